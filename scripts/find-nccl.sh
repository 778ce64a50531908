#!/usr/bin/env bash
# find-nccl.sh: prints the NCCL library GPU ranks open (cuda/cuda_group.cu): $OWLORE_NCCL_LIBRARY when
# set, else the libnccl.so.2 of pip's nvidia-nccl wheel when python3 has one (PyTorch installs it), else
# nothing (the loader's path is searched then). Sourced: `export OWLORE_NCCL_LIBRARY=$(scripts/find-nccl.sh)`.
if [ -n "${OWLORE_NCCL_LIBRARY:-}" ]; then
  echo "$OWLORE_NCCL_LIBRARY"
  exit 0
fi
python3 -c 'import glob, site
dirs = site.getsitepackages() + [site.getusersitepackages()]
hits = [p for d in dirs for p in glob.glob(d + "/nvidia/nccl/lib/libnccl.so.2")]
print(hits[0] if hits else "")' 2>/dev/null
