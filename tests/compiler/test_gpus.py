"""The GPU catalogue: figures, name lookup, instance selection per provider."""

from __future__ import annotations

import subprocess
import sys

import pytest

from specops import gpus
from specops.gpus import CATALOGUE, UnknownGPU, gpu, instance, instances_for

EXPECTED = {"T4", "V100", "A10G", "L4", "L40S", "A100-40GB", "A100-80GB", "H100", "H200", "B200", "MI300X"}


def test_catalogue_holds_the_nine_gpus() -> None:
    assert set(CATALOGUE) == EXPECTED


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_figures_are_consistent(name: str) -> None:
    g = CATALOGUE[name]
    # Vendors' "GB" is binary here: the datasheet figure times 2**30.
    assert g.memory_bytes == int(g.memory_datasheet * 2**30)
    # The driver exposes a little less than the datasheet (ECC/firmware), never more.
    assert 0.93 * g.memory_bytes <= g.visible_memory_bytes <= g.memory_bytes
    assert g.bf16_dense_tflops > 0 and g.memory_bandwidth_gbps > 0
    for i in g.instances:
        assert i.gpu == name and i.gpu_count >= 1
        assert i.name.startswith("ml.") == (i.provider == "sagemaker")
        assert i.usd_per_hour is None or i.usd_per_hour > 0


def test_exact_memory_figures() -> None:
    assert CATALOGUE["A100-80GB"].visible_memory_bytes == 80 * 2**30
    assert CATALOGUE["H100"].visible_memory_bytes == 81559 * 2**20
    assert CATALOGUE["L4"].visible_memory_bytes == 23034 * 2**20
    assert CATALOGUE["B200"].memory_datasheet == 180
    assert CATALOGUE["H200"].memory_bytes == 141 * 2**30


def test_dense_bf16_not_sparse() -> None:
    assert CATALOGUE["H100"].bf16_dense_tflops == 989.4
    assert CATALOGUE["L4"].bf16_dense_tflops == 121.0
    assert CATALOGUE["A100-40GB"].bf16_dense_tflops == 312.0


def test_lookup_is_case_insensitive() -> None:
    assert gpu("h100") is CATALOGUE["H100"]
    assert gpu(" a100-80gb ") is CATALOGUE["A100-80GB"]
    assert gpu("mi300x").vendor == "AMD"


@pytest.mark.parametrize(("wrong", "meant"), [("H10", "H100"), ("l40", "L40S"), ("A100-80", "A100-80GB")])
def test_unknown_gpu_suggests(wrong: str, meant: str) -> None:
    with pytest.raises(UnknownGPU, match=f"did you mean '{meant}'"):
        gpu(wrong)


def test_unknown_gpu_without_close_match_lists_known() -> None:
    with pytest.raises(ValueError, match="known: T4, V100, A10G, L4") as e:
        gpu("TPU-v5e")
    assert "did you mean" not in str(e.value)


def test_smallest_instance_first() -> None:
    assert [i.name for i in instances_for(gpu("L4"), "aws", 1)][:2] == ["g6.xlarge", "g6.2xlarge"]
    # Two L4s: no 2-GPU g6, so the 4-GPU g6.12xlarge (cheaper than g6.24xlarge) comes first.
    assert instances_for("L4", "aws", 2)[0].name == "g6.12xlarge"
    assert instances_for("L4", "gcp", 2)[0].name == "g2-standard-24"
    assert instances_for("L4", "sagemaker", 8)[0].name == "ml.g6.48xlarge"
    assert instances_for("A100-40GB", "gcp", 3)[0].name == "a2-highgpu-4g"
    counts = [i.gpu_count for i in instances_for("A10G", "aws", 1)]
    assert counts == sorted(counts)


def test_no_instance_large_enough_or_none_offered() -> None:
    assert instances_for("H100", "aws", 16) == []
    assert instances_for("MI300X", "aws", 1) == []
    assert instances_for("L40S", "gcp", 1) == []


def test_onprem_is_exactly_the_count() -> None:
    [node] = instances_for("MI300X", "onprem", 4)
    assert (node.provider, node.gpu_count, node.usd_per_hour) == ("onprem", 4, None)
    assert instances_for("L4", "local", 2)[0].provider == "onprem"


def test_bad_provider_and_count() -> None:
    with pytest.raises(ValueError, match="did you mean 'gcp'"):
        instances_for("L4", "gpc", 1)
    with pytest.raises(ValueError, match="at least 1"):
        instances_for("L4", "aws", 0)


def test_instance_lookup() -> None:
    assert instance("ml.g5.12xlarge").gpu_count == 4
    with pytest.raises(ValueError, match="did you mean 'p5.48xlarge'"):
        instance("p5.48xlarg")


def test_instance_names_unique_per_provider() -> None:
    seen = [(i.provider, i.name) for g in CATALOGUE.values() for i in g.instances]
    assert len(seen) == len(set(seen))
    assert gpus.PROVIDERS == ("aws", "sagemaker", "gcp", "onprem")


def test_import_stays_light() -> None:
    code = ("import sys, specops.gpus, specops.checks.capacity; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_t4_and_v100_have_no_bf16_and_real_shapes() -> None:
    assert not CATALOGUE["T4"].bf16 and not CATALOGUE["V100"].bf16 and CATALOGUE["H100"].bf16
    assert instances_for("T4", "sagemaker", 1)[0].name == "ml.g4dn.xlarge"
    assert instances_for("V100", "aws", 4)[0].name == "p3.8xlarge"


def test_a100_alone_is_ambiguous_and_names_both_sizes() -> None:
    from specops.gpus import UnknownGPU, gpu, gpu_problem

    with pytest.raises(UnknownGPU, match="A100-40GB or A100-80GB"):
        gpu("A100")
    assert "A100-40GB or A100-80GB" in gpu_problem("a100")


def test_smallest_shape_that_holds_the_gpus_prices_them() -> None:
    """Two H100s on GCP are an a3-highgpu-2g, not a whole 8-GPU machine; one on AWS a p5.4xlarge."""
    assert [i.name for i in instances_for("H100", "gcp", 2)][:1] == ["a3-highgpu-2g"]
    assert instances_for("H100", "aws", 1)[0].name == "p5.4xlarge"
    assert instances_for("H100", "gcp", 3)[0].name == "a3-highgpu-4g"
    assert instances_for("H100", "aws", 9) == []
