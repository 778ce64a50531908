"""Writes the per-block OWL outlier ratios of LLaMA-2-7B (M = 13, as published
with the OwLore code and used by ../shared/bench/torch_reference_bench.py),
linearly interpolated to another block count, as a ratios file for
`owlore train --ratios`. Usage: python3 bench/owl_ratios.py LAYERS OUT.json"""
import json
import sys

import numpy as np

LLAMA2_7B_RATIOS = [
    0.2678, 0.2953, 0.1274, 0.1145, 0.0988, 0.0884, 0.0878, 0.0838, 0.0801, 0.0722, 0.0707,
    0.0696, 0.0630, 0.0591, 0.0552, 0.0537, 0.0468, 0.0392, 0.0336, 0.0340, 0.0316, 0.0279,
    0.0278, 0.0229, 0.0254, 0.0209, 0.0242, 0.0182, 0.0184, 0.0209, 0.0241, 0.0825]

layers, out = int(sys.argv[1]), sys.argv[2]
r = np.array(LLAMA2_7B_RATIOS)
if layers != len(r):
    r = np.interp(np.linspace(0, len(r) - 1, layers), np.arange(len(r)), r)
with open(out, "w") as f:
    json.dump({"ratios": [float(x) for x in r]}, f)
