#!/usr/bin/env python3
"""Golden training trajectories: owlore's recipes (owlore, galore, lisa, full) re-implemented in PyTorch.

What it makes (under tests/fixtures/trajectory/):
  model/                 a tiny random LlamaForCausalLM (save_pretrained, float32) + config.v4.json
                         (the transformers 4 layout, as in tests/fixtures/models/)
  stream.safetensors     ids I32 [1281]: a seeded random token stream in [0, 97)
  <method>.safetensors   losses F64 [20] (loss of each step, before its update), grad_norms F64 [20]
                         (global L2 norm before clipping), lrs F64 [20] (learning rate of the step);
                         owlore.safetensors also holds final.<name> F32 for every parameter after the
                         20th update
  recipes.json           each method's settings under owlore's flag names (null: leave the flag out)

The recipe (this script is its specification; the C trainer must match it):
  * batches: step s, row r uses window w = s*B + r: inputs ids[w*T : w*T+T], targets
    ids[w*T+1 : w*T+T+1] (owlore's batcher with shuffle off, no validation split, grad_accum 1).
    Loss = mean cross-entropy of logits [B,T,V] against the targets over all B*T positions.
  * trainable every step: model.embed_tokens, model.norm, lm_head, and the 9 tensors (7 linears,
    2 RMSNorms) of the active blocks. The active set changes every `interval` steps: period k uses
    schedule[k % len(schedule)]. Frozen tensors get no gradient and no optimizer step; their
    optimizer state (moments, projector, step count) is kept and continues when they return.
  * each step: forward, loss, backward; grad_norm = L2 norm over all trainable gradients;
    coef = min(1, clip / (grad_norm + 1e-6)) multiplied into every gradient;
    lr_t = lr * (steps - t) / steps (t 0-based); then the optimizer step.
  * galore-adamw: block linear weights are projected (GaLore), everything else takes the same
    update unprojected. Per tensor, own step count s (from 0): if no projector yet or
    s % update_gap == 0, SVD of the clipped gradient G [rows, cols]; rows >= cols ("right"):
    P = Vh[:rank] (rank x cols), else ("left") P = U[:, :rank] (rows x rank); canonical signs: each
    singular vector is flipped so that its largest-|.| entry (first on ties) is positive.
    R = G P^T (right) or P^T G (left). s += 1; m = b1 m + (1-b1) R; v = b2 v + (1-b2) R*R;
    n = m / (sqrt(v) + eps); update = scale * (n P (right) or P n); step = lr sqrt(1-b2^s)/(1-b1^s);
    p -= step * update; if weight_decay: p -= lr * weight_decay * p.
  * adamw: torch.optim.AdamW(foreach=False): p *= 1 - lr wd; m = b1 m + (1-b1) g;
    v = b2 v + (1-b2) g^2; s += 1; p -= lr/(1-b1^s) * m / (sqrt(v)/sqrt(1-b2^s) + eps).
    (Checked here against torch.optim.AdamW on a toy tensor.)

Every trajectory is also rerun in float64 (same code) and the relative difference of the float32
losses is printed: the floating-point noise floor for the C test's tolerance.

Weights: one torch.Generator (seeded), in named_parameters() order: RMSNorm weights
1 + 0.1*randn, everything else 0.2*randn (as make_model_fixtures.py).
Deterministic: fixed seeds, float32, one CPU thread, torch.use_deterministic_algorithms(True),
attn_implementation="eager". Rerunning on the same versions rewrites the files byte for byte.

Run from the repository root:
    python tests/reference/make_trajectory_fixtures.py            # writes tests/fixtures/trajectory/
    python tests/reference/make_trajectory_fixtures.py --out DIR  # writes DIR instead
"""
import argparse
import json
import math
import os

import numpy as np
import torch
import transformers
from safetensors.numpy import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM
from fixture_common import setup_determinism, v4_config

SOURCE = "tests/reference/make_trajectory_fixtures.py"
VOCAB = 97
MODEL_SEED = 3001
STREAM_SEED = 3002
B, T, STEPS = 4, 16, 20
N_IDS = STEPS * B * T + 1
LINEARS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")

# Keys are owlore's flag names; null means "leave the flag out". Besides the settings of the brief
# the entries pin what the trajectory depends on (gamma for the forced schedules, no shuffling, no
# validation split, no accumulation, linear schedule without warmup, exact SVD projector).
COMMON = dict(clip=1.0, batch_size=B, block_size=T, steps=STEPS, beta1=0.9, beta2=0.999,
              shuffle=False, val_split=0.0, grad_accum=1, schedule="linear", warmup=0)
RECIPES = {
    "owlore": dict(method="owlore", optimizer="galore-adamw", forced_blocks="0,2;1,3", gamma=2,
                   interval=10, rank=8, update_gap=6, scale=1.0, projector="exact", eps=1e-6,
                   lr=1e-2, weight_decay=0.0, **COMMON),
    # blocks come back after a pause (GaLore state resumes) and clip 4 leaves some steps unclipped
    "owlore_revisit": dict(method="owlore", optimizer="galore-adamw", forced_blocks="0,2;1,3", gamma=2,
                           interval=5, rank=8, update_gap=4, scale=1.0, projector="exact", eps=1e-6,
                           lr=1e-2, weight_decay=0.0, **dict(COMMON, clip=4.0)),
    "galore": dict(method="galore", optimizer="galore-adamw", forced_blocks=None, gamma=None,
                   interval=None, rank=8, update_gap=6, scale=2.0, projector="exact", eps=1e-6,
                   lr=1e-2, weight_decay=0.01, **COMMON),
    "lisa": dict(method="lisa", optimizer="adamw", forced_blocks="0,1;2,3;1,3", gamma=2, interval=3,
                 rank=None, update_gap=None, scale=None, projector=None, eps=1e-8, lr=5e-3,
                 weight_decay=0.01, **COMMON),
    "full": dict(method="full", optimizer="adamw", forced_blocks=None, gamma=None, interval=None,
                 rank=None, update_gap=None, scale=None, projector=None, eps=1e-8, lr=5e-3,
                 weight_decay=0.0, **COMMON),
}


def build_model():
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, tie_word_embeddings=False,
        rms_norm_eps=1e-5, max_position_embeddings=64, hidden_act="silu", initializer_range=0.2,
        attention_dropout=0.0, attention_bias=False, mlp_bias=False, pad_token_id=None,
        bos_token_id=1, eos_token_id=2, dtype="float32",
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    config._attn_implementation = "eager"
    torch.manual_seed(MODEL_SEED)
    model = LlamaForCausalLM(config).to(torch.float32)
    gen = torch.Generator().manual_seed(MODEL_SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            p.copy_(1.0 + 0.1 * noise if name.endswith("norm.weight") else 0.2 * noise)
    return model


def parse_schedule(s, L):
    if s is None:
        return [list(range(L))]
    return [[int(x) for x in period.split(",")] for period in s.split(";")]


def batch(ids, step):
    rows_in, rows_tg = [], []
    for r in range(B):
        w = step * B + r
        rows_in.append(ids[w * T: w * T + T])
        rows_tg.append(ids[w * T + 1: w * T + T + 1])
    return torch.stack(rows_in), torch.stack(rows_tg)


def canonical_signs(P, rows):
    """Flip each singular vector (row of P if rows, else column) so that its largest-|.| entry
    (first index on ties: torch.argmax returns the first maximum) is positive."""
    V = P if rows else P.t()
    idx = torch.argmax(V.abs(), dim=1)
    picked = V.gather(1, idx[:, None])[:, 0]
    flip = torch.where(picked < 0, -1.0, 1.0).to(P.dtype)
    return (V * flip[:, None]) if rows else (V * flip[:, None]).t()


class Trajectory:
    """One run of one recipe; dtype float32 (the fixture) or float64 (the noise floor)."""

    def __init__(self, model_dir, recipe, dtype):
        self.r = recipe
        self.dtype = dtype
        self.model = LlamaForCausalLM.from_pretrained(model_dir, attn_implementation="eager",
                                                      dtype=torch.float32).to(dtype)
        self.model.train()
        self.params = dict(self.model.named_parameters())
        self.L = self.model.config.num_hidden_layers
        self.state = {}
        self.svd_gaps = []   # relative gaps s[i]-s[i+1] among the top rank+1 singular values

    def projected(self, name):
        return self.r["optimizer"] == "galore-adamw" and name.endswith(".weight") and \
            any(("." + lin + ".") in name for lin in LINEARS)

    def trainable(self, name, active):
        if not name.startswith("model.layers."):
            return True
        return int(name.split(".")[2]) in active

    def galore_step(self, name, p, g, lr):
        r = self.r
        b1, b2 = r["beta1"], r["beta2"]
        st = self.state.setdefault(name, {"step": 0})
        if self.projected(name):
            right = g.shape[0] >= g.shape[1]
            if "P" not in st or st["step"] % r["update_gap"] == 0:
                U, S, Vh = torch.linalg.svd(g, full_matrices=False)
                k = r["rank"]
                top = S[:k + 1].double()
                self.svd_gaps.append(float(((top[:-1] - top[1:]) / top[0]).min()))
                st["P"] = canonical_signs(Vh[:k, :] if right else U[:, :k], right).contiguous()
                st["right"] = right
            P = st["P"]
            R = g @ P.t() if right else P.t() @ g
        else:
            R = g
        if "m" not in st:
            st["m"] = torch.zeros_like(R)
            st["v"] = torch.zeros_like(R)
        st["step"] += 1
        s = st["step"]
        st["m"] = b1 * st["m"] + (1 - b1) * R
        st["v"] = b2 * st["v"] + (1 - b2) * R * R
        n = st["m"] / (torch.sqrt(st["v"]) + r["eps"])
        if self.projected(name):
            update = (n @ st["P"] if st["right"] else st["P"] @ n) * r["scale"]
        else:
            update = n
        step_size = lr * math.sqrt(1 - b2 ** s) / (1 - b1 ** s)
        p -= step_size * update
        if r["weight_decay"]:
            p -= lr * r["weight_decay"] * p

    def adamw_step(self, name, p, g, lr):
        adamw_explicit(self.state.setdefault(name, {"step": 0}), p, g, lr, self.r["beta1"],
                       self.r["beta2"], self.r["eps"], self.r["weight_decay"])

    def run(self, ids):
        r = self.r
        sched = parse_schedule(r["forced_blocks"], self.L)
        interval = r["interval"] or STEPS
        losses, norms, lrs, actives = [], [], [], []
        for t in range(STEPS):
            active = sched[(t // interval) % len(sched)]
            names = [n for n in self.params if self.trainable(n, active)]
            for n, p in self.params.items():
                p.requires_grad_(n in names)
                p.grad = None
            x, y = batch(ids, t)
            logits = self.model(input_ids=x, use_cache=False).logits
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))
            loss.backward()
            grads = [self.params[n].grad for n in names]
            assert all(g is not None for g in grads)
            assert all(self.params[n].grad is None for n in self.params if n not in names)
            # torch.nn.utils.clip_grad_norm_ semantics: norm of the per-tensor norms
            total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
            coef = torch.clamp(r["clip"] / (total + 1e-6), max=1.0)
            lr = r["lr"] * (STEPS - t) / STEPS
            with torch.no_grad():
                for n in names:
                    g = self.params[n].grad * coef
                    if r["optimizer"] == "galore-adamw":
                        self.galore_step(n, self.params[n], g, lr)
                    else:
                        self.adamw_step(n, self.params[n], g, lr)
            losses.append(loss.item())
            norms.append(total.item())
            lrs.append(lr)
            actives.append(active)
        return np.array(losses), np.array(norms), np.array(lrs), actives


def adamw_explicit(st, p, g, lr, b1, b2, eps, wd):
    if "m" not in st:
        st["m"] = torch.zeros_like(p)
        st["v"] = torch.zeros_like(p)
    p *= 1 - lr * wd
    st["m"] = b1 * st["m"] + (1 - b1) * g
    st["v"] = b2 * st["v"] + (1 - b2) * g * g
    st["step"] += 1
    s = st["step"]
    denom = torch.sqrt(st["v"]) / math.sqrt(1 - b2 ** s) + eps
    p -= lr / (1 - b1 ** s) * st["m"] / denom


def check_adamw_against_torch():
    gen = torch.Generator().manual_seed(7)
    p0 = torch.randn(5, 7, generator=gen)
    a = p0.clone().requires_grad_(True)
    b = p0.clone()
    opt = torch.optim.AdamW([a], lr=3e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05,
                            foreach=False)
    st = {"step": 0}
    worst = 0.0
    for k in range(12):
        g = torch.randn(5, 7, generator=gen) * (0.1 + k)
        lr = 3e-2 * (12 - k) / 12
        for grp in opt.param_groups:
            grp["lr"] = lr
        a.grad = g.clone()
        opt.step()
        with torch.no_grad():
            adamw_explicit(st, b, g, lr, 0.9, 0.999, 1e-8, 0.05)
        worst = max(worst, float(((a.detach() - b).abs() / b.abs().clamp_min(1e-3)).max()))
    assert worst < 1e-5, worst
    print("explicit AdamW vs torch.optim.AdamW(foreach=False), 12 steps: max rel diff %.2e" % worst)


def check_clip_against_torch(model_dir):
    m1 = LlamaForCausalLM.from_pretrained(model_dir, attn_implementation="eager", dtype=torch.float32)
    params = list(m1.parameters())
    gen = torch.Generator().manual_seed(8)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen)
    ref = [p.grad.clone() for p in params]
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in ref]))
    coef = torch.clamp(1.0 / (total + 1e-6), max=1.0)
    tn = torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=False)
    assert tn.item() == total.item(), (tn.item(), total.item())
    for p, g in zip(params, ref):
        assert torch.equal(p.grad, g * coef)
    print("explicit clipping == torch.nn.utils.clip_grad_norm_(foreach=False) (norm %.4f)" % total.item())


def save_model(out):
    d = os.path.join(out, "model")
    os.makedirs(d, exist_ok=True)
    model = build_model()
    model.save_pretrained(d)
    with open(os.path.join(d, "config.json")) as f:
        cfg_json = json.load(f)
    with open(os.path.join(d, "config.v4.json"), "w") as f:
        json.dump(v4_config(cfg_json), f, indent=2, sort_keys=True)
        f.write("\n")
    # the reloaded model and the v4 config give the same logits as the built one
    x = torch.randint(0, VOCAB, (2, T), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ref = model(input_ids=x).logits
        re = LlamaForCausalLM.from_pretrained(d, attn_implementation="eager", dtype=torch.float32)
        assert torch.equal(re(input_ids=x).logits, ref), "reloaded model differs"
        cfg4 = LlamaConfig.from_dict(v4_config(cfg_json))
        cfg4._attn_implementation = "eager"
        m4 = LlamaForCausalLM(cfg4)
        m4.load_state_dict(re.state_dict())
        assert torch.equal(m4(input_ids=x).logits, ref), "config.v4.json gives different logits"
    n = sum(p.numel() for p in model.parameters())
    print("model: %d parameters in %d tensors" % (n, len(list(model.parameters()))))
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "fixtures", "trajectory"))
    args = ap.parse_args()
    out = os.path.normpath(args.out)
    setup_determinism()
    print("torch %s, transformers %s" % (torch.__version__, transformers.__version__))
    os.makedirs(out, exist_ok=True)
    check_adamw_against_torch()
    model_dir = save_model(out)
    check_clip_against_torch(model_dir)

    gen = torch.Generator().manual_seed(STREAM_SEED)
    ids32 = torch.randint(0, VOCAB, (N_IDS,), generator=gen, dtype=torch.int64).to(torch.int32)
    save_file({"ids": ids32.numpy()}, os.path.join(out, "stream.safetensors"),
              metadata={"source": SOURCE})
    ids = load_file(os.path.join(out, "stream.safetensors"))["ids"]
    assert ids.shape == (N_IDS,) and ids.min() >= 0 and ids.max() < VOCAB
    ids = torch.from_numpy(ids.astype(np.int64))

    with open(os.path.join(out, "recipes.json"), "w") as f:
        json.dump(RECIPES, f, indent=2, sort_keys=True)
        f.write("\n")

    for method, recipe in RECIPES.items():
        tr = Trajectory(model_dir, recipe, torch.float32)
        losses, norms, lrs, actives = tr.run(ids)
        tensors = {"losses": losses.astype(np.float64), "grad_norms": norms.astype(np.float64),
                   "lrs": lrs.astype(np.float64)}
        if method == "owlore":
            for n, p in tr.model.named_parameters():
                tensors["final." + n] = p.detach().to(torch.float32).contiguous().numpy()
        path = os.path.join(out, method + ".safetensors")
        save_file(tensors, path, metadata={"source": SOURCE})
        back = load_file(path)
        assert all(np.array_equal(back[k], v) for k, v in tensors.items())

        tr64 = Trajectory(model_dir, recipe, torch.float64)
        l64, n64, _, _ = tr64.run(ids)
        rel_loss = float(np.max(np.abs(losses - l64) / np.abs(l64)))
        rel_norm = float(np.max(np.abs(norms - n64) / np.abs(n64)))
        clipped = [t for t in range(STEPS) if norms[t] > recipe["clip"]]
        if not clipped:
            raise SystemExit("%s: clipping never triggers; raise lr or the init scale" % method)
        print("%s: loss %.7f -> %.7f (min %.7f at step %d)" % (
            method, losses[0], losses[-1], losses.min(), int(losses.argmin())))
        print("  active blocks per step: %s" % " ".join(",".join(map(str, a)) for a in actives))
        print("  grad_norms: %s" % " ".join("%.3f" % v for v in norms))
        print("  clipped (grad_norm > %g) at steps %s (%d of %d)" % (
            recipe["clip"], clipped, len(clipped), STEPS))
        print("  float32 vs float64: losses max rel %.2e, grad_norms max rel %.2e" % (rel_loss, rel_norm))
        if tr.svd_gaps:
            print("  %d SVDs; smallest gap between the top %d+1 singular values / s_max: %.2e "
                  "(float64 run %.2e)" % (len(tr.svd_gaps), recipe["rank"], min(tr.svd_gaps),
                                          min(tr64.svd_gaps)))
        if method == "owlore":
            worst = 0.0
            for n, p in tr64.model.named_parameters():
                a = tensors["final." + n].astype(np.float64)
                b = p.detach().numpy()
                worst = max(worst, float(np.abs(a - b).max() / np.abs(b).max()))
            print("  final params float32 vs float64: max abs diff / max |p| per tensor %.2e" % worst)


if __name__ == "__main__":
    main()
