"""Writes the torch.save fixtures that tests/pickle.rs reads with bertfit's pickle reader.

Usage: make_pickles.py OUT_DIR

Every checkpoint comes with the tensors it must load as (contiguous, unshared copies in a safetensors
file) and a manifest.json giving the key order and the names of the refused globals, so the Rust side
compares against what torch itself produced rather than against numbers pasted into the test.
"""
import collections
import io
import json
import os
import pickle
import sys
import warnings
import zipfile

import numpy as np
import torch
from safetensors.torch import save_file


def small_state_dict():
    """A few dtypes and the storage layouts a reader can get wrong (views, strides, sharing, 0-d)."""
    g = torch.Generator().manual_seed(0)
    sd = collections.OrderedDict()
    sd["f32"] = torch.randn(3, 4, generator=g)
    sd["f16"] = torch.randn(2, 5, generator=g).half()
    sd["bf16"] = torch.randn(4, 3, generator=g).bfloat16()
    sd["i64"] = torch.arange(7, dtype=torch.int64) - 3
    sd["f64"] = torch.randn(2, 2, generator=g, dtype=torch.float64)
    sd["i32"] = torch.tensor([1, -2, 2**31 - 1], dtype=torch.int32)
    sd["mask"] = torch.tensor([True, False, True])
    # A transpose is saved as a view: the whole (3, 5) storage with strides (1, 5).
    sd["transposed"] = torch.randn(3, 5, generator=g).t()
    # Two overlapping views of one storage, the second at a non-zero offset.
    base = torch.randn(10, generator=g)
    sd["shared_a"] = base[:6].view(2, 3)
    sd["shared_b"] = base[4:]
    # A 0-d tensor, and the same tensor object under two names (tied weights).
    sd["scalar"] = torch.tensor(3.5)
    sd["f32_tied"] = sd["f32"]
    sd["empty"] = torch.zeros(0, 4)
    # expand() gives stride 0, as older transformers' position_ids buffer was saved.
    sd["expanded"] = torch.arange(4).expand(3, 4)
    return sd


def bert_state_dict():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, vocab_size=99
    )
    return BertForSequenceClassification(config).state_dict()


def expected(sd):
    # safetensors refuses views and shared storage: store each tensor as its own contiguous copy.
    return {k: v.detach().contiguous().clone() for k, v in sd.items()}


class Evil:
    """Pickles as a call to os.system: what a malicious pytorch_model.bin does on torch.load."""

    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def big_endian_copy(src, dst):
    """The archive a big-endian machine would write: byteorder 'big' and every element byte-swapped."""
    with zipfile.ZipFile(src) as zin:
        pkl_name = next(n for n in zin.namelist() if n.endswith("/data.pkl"))
        prefix = pkl_name[: -len("data.pkl")]
        itemsize = {}

        class Scan(pickle.Unpickler):
            # Only the storages' element sizes are wanted: no tensor is built.
            def find_class(self, module, name):
                if module == "collections":
                    return collections.OrderedDict
                if module == "torch._utils":
                    return lambda *args: None
                return getattr(torch, name)

            def persistent_load(self, pid):
                itemsize[pid[2]] = pid[1].dtype.itemsize

        with warnings.catch_warnings():  # the legacy storage classes' dtype warns that TypedStorage is deprecated
            warnings.simplefilter("ignore")
            Scan(io.BytesIO(zin.read(pkl_name))).load()
        with zipfile.ZipFile(dst, "w") as zout:
            for name in zin.namelist():
                data = zin.read(name)
                if name == prefix + "byteorder":
                    data = b"big"
                elif name.startswith(prefix + "data/"):
                    n = itemsize[name[len(prefix + "data/") :]]
                    if n > 1:
                        data = np.frombuffer(data, dtype=f"<u{n}").byteswap().tobytes()
                zout.writestr(name, data)


def save_both(obj, out, stem):
    torch.save(obj, os.path.join(out, f"{stem}_zip.pt"))
    torch.save(obj, os.path.join(out, f"{stem}_legacy.pt"), _use_new_zipfile_serialization=False)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)

    small = small_state_dict()
    save_both(small, out, "small")
    # Protocol 4 exercises FRAME, MEMOIZE, SHORT_BINUNICODE and STACK_GLOBAL.
    torch.save(small, os.path.join(out, "small_p4_zip.pt"), pickle_protocol=4)
    save_file(expected(small), os.path.join(out, "small.safetensors"))
    big = os.path.join(out, "small_big_endian_zip.pt")
    big_endian_copy(os.path.join(out, "small_zip.pt"), big)
    # torch.load swaps big-endian archives back: the copy must load as the original does.
    for k, v in torch.load(big).items():
        assert torch.equal(v, small[k]), k

    bert = bert_state_dict()
    for sub, legacy in [("bert_zip", False), ("bert_legacy", True)]:
        os.makedirs(os.path.join(out, sub), exist_ok=True)
        torch.save(bert, os.path.join(out, sub, "pytorch_model.bin"), _use_new_zipfile_serialization=not legacy)
    save_file(expected(bert), os.path.join(out, "bert.safetensors"))

    # A training checkpoint wrapping the state dict, and a dict that is not a state dict.
    save_both({"epoch": 3, "state_dict": small}, out, "nested")
    save_both(collections.OrderedDict([("w", torch.ones(2)), ("step", 5), ("note", "hi")]), out, "not_state_dict")

    pwned = os.path.join(out, "pwned")
    evil = collections.OrderedDict([("w", torch.ones(2)), ("payload", Evil(f"echo pwned > {pwned}"))])
    save_both(evil, out, "malicious")
    # The same payload as a bare pickle in the zip layout, without torch's tensor machinery.
    with zipfile.ZipFile(os.path.join(out, "malicious_plain_zip.pt"), "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(Evil(f"echo pwned > {pwned}"), protocol=2))
        z.writestr("archive/byteorder", "little")

    # A zip that is not a torch.save archive.
    with zipfile.ZipFile(os.path.join(out, "no_pickle.zip"), "w") as z:
        z.writestr("archive/version", "3\n")

    manifest = {
        "small_keys": list(small.keys()),
        "bert_keys": list(bert.keys()),
        "evil_global": f"{os.system.__module__}.{os.system.__name__}",
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
