"""What a stored result records about the machine: enough to tell two CPUs apart (issue 15, items 9/10)."""
from __future__ import annotations

import torch

from benchmark.engine import device
from benchmark.engine.device import Precision, SIMD_FLAGS, environment, parse_cpuinfo

X86 = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw avx512_vnni amx_tile amx_bf16 ht
processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu
"""
ARM = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm sve crc32
"""


def test_parse_cpuinfo_reads_the_model_and_the_simd_flags_in_a_fixed_order():
    assert parse_cpuinfo(X86) == ("Intel(R) Xeon(R) Platinum 8480+",
                                  ["sse4_2", "avx", "fma", "avx2", "avx512f", "avx512bw", "avx512_vnni",
                                   "amx_tile", "amx_bf16"])
    assert parse_cpuinfo(ARM) == (None, ["asimd", "sve"])
    assert parse_cpuinfo("") == (None, [])


def test_the_environment_records_the_cpu_model_and_instruction_set():
    cpu = torch.device("cpu")
    env = environment(cpu, Precision(cpu, False))
    assert isinstance(env["cpu_model"], str) and env["cpu_model"] and env["device_name"] == env["cpu_model"]
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert env["cpu_capability"] in {"DEFAULT", "NO AVX", "AVX2", "AVX512", "ZVECTOR", "VSX", "SVE256"} \
        or env["cpu_capability"].startswith("SVE")
    assert set(env["cpu_flags"]) <= set(SIMD_FLAGS)
    assert env["threads"] == torch.get_num_threads() and env["torch"] == torch.__version__
    try:
        listed = set(parse_cpuinfo(device.CPUINFO.read_text())[1])
    except OSError:
        return
    assert set(env["cpu_flags"]) == listed
    if env["cpu_capability"] == "AVX512":
        assert "avx512f" in env["cpu_flags"]
    if env["cpu_capability"] == "AVX2":
        assert "avx2" in env["cpu_flags"]
