/* preset.h: resolving what the user names as a model into a config.json path.
 *
 * Accepted: a model directory (its config.json), a path to a config file, or
 * the name of a preset (configs/models/<name>.json, with or without ".json").
 * Presets are looked up in $OWLORE_CONFIG_DIR when set, else in
 * <source tree>/configs/models (OWLORE_SOURCE_DIR, fixed at compile time). */
#ifndef OWLORE_MODEL_PRESET_H
#define OWLORE_MODEL_PRESET_H

#include "core/error.h"

/* *config_path: a new heap string. On failure the message lists the presets. */
int model_preset_path(const char *name_or_path, char **config_path, OwError *err);
/* The folder presets are read from (heap string). */
char *model_preset_dir(void);
/* Sorted preset names (without ".json") in a heap array of heap strings;
 * free with model_preset_list_free. Returns the count (0 when the folder is
 * missing or empty). */
int model_preset_list(char ***names);
void model_preset_list_free(char **names, int n);

#endif
