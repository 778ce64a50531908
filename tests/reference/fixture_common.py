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


def greedy(model, ids, eos, max_new):
    """Greedy generate after ids: the new ids and the smallest best-minus-second logit along the path."""
    out = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=max_new, eos_token_id=eos,
                         pad_token_id=eos, output_scores=True, return_dict_in_generate=True)
    new = out.sequences[0, len(ids):].tolist()
    gaps = [float((s[0].topk(2).values[0] - s[0].topk(2).values[1])) for s in out.scores]
    return new, min(gaps)
