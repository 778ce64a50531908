"""fixture_common.py: helpers shared by the fixture scripts of this folder
(imported from the script's own directory, which Python puts on sys.path)."""
import torch
import transformers


def setup_determinism():
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)


def v4_config(cfg_json):
    """The same config in the transformers 4 layout (top-level rope_theta, rope_scaling)."""
    c = dict(cfg_json)
    rp = dict(c.pop("rope_parameters"))
    c["rope_theta"] = rp.pop("rope_theta")
    c["rope_scaling"] = None if rp.get("rope_type", "default") == "default" else rp
    if "dtype" in c:
        c["torch_dtype"] = c.pop("dtype")
    return c
