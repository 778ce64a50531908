/* preset.h: resolving what the user names as a model into a configuration.
 *
 * Accepted: a model directory (its config.json), a path to a config file, or
 * the name of a preset: configs/models/<name>.json, compiled into the binary
 * (core/embedded.h), or <name>.json in $OWLORE_CONFIG_DIR, which is searched
 * first so users can add their own. */
#ifndef OWLORE_MODEL_PRESET_H
#define OWLORE_MODEL_PRESET_H

#include "core/error.h"
#include "model/config.h"

/* Loads the configuration. *source (heap) is the config.json path, or
 * "preset <name>" for a compiled-in preset; *is_dir tells whether
 * name_or_path is a model directory (weights may sit beside the config). On
 * failure the message lists the presets. */
int model_preset_resolve(const char *name_or_path, ModelConfig *cfg, char **source, int *is_dir, OwError *err);
/* Sorted preset names (without ".json") in a heap array of heap strings;
 * free with model_preset_list_free. Returns the count. */
int model_preset_list(char ***names);
void model_preset_list_free(char **names, int n);

#endif
