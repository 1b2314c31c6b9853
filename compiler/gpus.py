"""The GPU catalogue: memory, dense bf16 compute, bandwidth and where to rent each GPU.

Typed data, stdlib only, so the CLI can import it at start-up. The capacity planner
(`specops.checks.capacity`) reads it; spec validation uses `gpu()` to check accelerator names.

Memory, exactly. Every vendor here writes "GB" on the datasheet but means binary units:
HBM and GDDR parts come in power-of-two densities (an A100 80GB is 5 stacks x 16 GiB and
the driver reports exactly 81920 MiB). So `memory_bytes` is the datasheet figure x 2**30.
The driver never exposes all of it (ECC and firmware reservations), and vLLM multiplies
`gpu_memory_utilization` by what the driver reports, so each GPU also carries
`visible_memory_bytes`: the total that `nvidia-smi` (or `rocm-smi` for the MI300X) prints,
taken from public outputs of those tools. The planner uses the visible figure.

Compute is dense bf16 tensor throughput (no 2:4 sparsity); bandwidth is in decimal GB/s.

Prices are on-demand list prices per instance-hour, in USD, as publicly listed in 2025,
and APPROXIMATE: AWS us-east-1 (EC2, and SageMaker real-time inference for `ml.` types),
GCP us-central1 (GCP has no us-east-1). AWS cut P4/P5 prices in June 2025; the figures
below are after that cut where known. `None` means no public on-demand price is known here
(capacity-block or calendar-only offerings, or a price this catalogue does not vouch for).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from specops.diagnostics import did_you_mean

Provider = Literal["aws", "sagemaker", "gcp", "onprem"]
PROVIDERS: tuple[Provider, ...] = ("aws", "sagemaker", "gcp", "onprem")
# Target.provider says "local" for the embedded target; its GPUs are whatever is on hand.
_PROVIDER_ALIASES = {"local": "onprem", "ec2": "aws", "aws-sagemaker": "sagemaker"}

PRICES_AS_OF = "2025, approximate on-demand list prices"
AWS_REGION = "us-east-1"
GCP_REGION = "us-central1"

_GIB = 1 << 30
_MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class Instance:
    """A rentable machine type (or an on-prem node) and the GPUs it holds."""

    name: str  # provider's type name: "g6.xlarge", "ml.g6.xlarge", "g2-standard-4"
    provider: Provider
    gpu: str  # canonical GPU name from the catalogue
    gpu_count: int  # GPUs in one instance
    usd_per_hour: float | None  # on-demand list price, approximate; None when unknown
    region: str | None  # the region the price is for

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "provider": self.provider,
            "gpu": self.gpu,
            "gpu_count": self.gpu_count,
            "usd_per_hour": self.usd_per_hour,
            "region": self.region,
            "price_approximate": self.usd_per_hour is not None,
        }


@dataclass(frozen=True, slots=True)
class GPU:
    """One accelerator model."""

    name: str  # canonical name, as specs write it ("H100")
    vendor: str  # "NVIDIA" | "AMD"
    memory_datasheet: float  # the figure the vendor prints ("80GB" -> 80)
    memory_datasheet_unit: Literal["GiB"]  # what the vendor's "GB" means (see module doc)
    visible_memory_bytes: int  # total the driver reports; what vLLM's utilisation scales
    bf16_dense_tflops: float  # dense bf16 tensor TFLOP/s, no sparsity
    memory_bandwidth_gbps: float  # GB/s (decimal)
    description: str  # form factor and memory type, for reports
    instances: tuple[Instance, ...] = ()
    # Native bf16 tensor math (compute capability >= 8.0); T4 and V100 have none.
    bf16: bool = True

    @property
    def memory_bytes(self) -> int:
        """The datasheet capacity in bytes, as the vendor means it (binary units)."""
        return int(self.memory_datasheet * _GIB)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "vendor": self.vendor,
            "memory_datasheet": f"{self.memory_datasheet:g} {self.memory_datasheet_unit}",
            "memory_bytes": self.memory_bytes,
            "visible_memory_bytes": self.visible_memory_bytes,
            "bf16_dense_tflops": self.bf16_dense_tflops,
            "memory_bandwidth_gbps": self.memory_bandwidth_gbps,
            "description": self.description,
        }


def _inst(provider: Provider, gpu: str, rows: list[tuple[str, int, float | None]]) -> tuple[Instance, ...]:
    region = {"aws": AWS_REGION, "sagemaker": AWS_REGION, "gcp": GCP_REGION}.get(provider)
    return tuple(Instance(n, provider, gpu, c, p, region) for n, c, p in rows)


# ---- the catalogue ----------------------------------------------------------------------

_T4 = (
    _inst("aws", "T4", [
        ("g4dn.xlarge", 1, 0.526), ("g4dn.2xlarge", 1, 0.752), ("g4dn.4xlarge", 1, 1.204),
        ("g4dn.8xlarge", 1, 2.176), ("g4dn.16xlarge", 1, 4.352), ("g4dn.12xlarge", 4, 3.912),
        ("g4dn.metal", 8, 7.824),
    ])
    + _inst("sagemaker", "T4", [
        ("ml.g4dn.xlarge", 1, 0.736), ("ml.g4dn.2xlarge", 1, 0.94), ("ml.g4dn.4xlarge", 1, 1.505),
        ("ml.g4dn.8xlarge", 1, 2.72), ("ml.g4dn.16xlarge", 1, 5.44), ("ml.g4dn.12xlarge", 4, 4.89),
    ])
    # GCP attaches T4s to N1 machines; the shape is the machine type plus the GPU count.
    + _inst("gcp", "T4", [
        ("n1-standard-4+1xT4", 1, 0.54), ("n1-standard-16+2xT4", 2, 1.46), ("n1-standard-32+4xT4", 4, 2.92),
    ])
)

_V100 = (
    _inst("aws", "V100", [("p3.2xlarge", 1, 3.06), ("p3.8xlarge", 4, 12.24), ("p3.16xlarge", 8, 24.48)])
    + _inst("sagemaker", "V100", [
        ("ml.p3.2xlarge", 1, 3.825), ("ml.p3.8xlarge", 4, 14.688), ("ml.p3.16xlarge", 8, 28.152),
    ])
    + _inst("gcp", "V100", [
        ("n1-standard-8+1xV100", 1, 2.86), ("n1-standard-16+2xV100", 2, 5.72),
        ("n1-standard-32+4xV100", 4, 11.44), ("n1-standard-64+8xV100", 8, 22.88),
    ])
)

_A10G = (
    _inst("aws", "A10G", [
        ("g5.xlarge", 1, 1.006), ("g5.2xlarge", 1, 1.212), ("g5.4xlarge", 1, 1.624),
        ("g5.8xlarge", 1, 2.448), ("g5.16xlarge", 1, 4.096), ("g5.12xlarge", 4, 5.672),
        ("g5.24xlarge", 4, 8.144), ("g5.48xlarge", 8, 16.288),
    ])
    + _inst("sagemaker", "A10G", [
        ("ml.g5.xlarge", 1, 1.408), ("ml.g5.2xlarge", 1, 1.515), ("ml.g5.4xlarge", 1, 2.03),
        ("ml.g5.8xlarge", 1, 3.06), ("ml.g5.16xlarge", 1, 5.12), ("ml.g5.12xlarge", 4, 7.09),
        ("ml.g5.24xlarge", 4, 10.18), ("ml.g5.48xlarge", 8, 20.36),
    ])
)

_L4 = (
    _inst("aws", "L4", [
        ("g6.xlarge", 1, 0.8048), ("g6.2xlarge", 1, 0.9776), ("g6.4xlarge", 1, 1.3232),
        ("g6.8xlarge", 1, 2.0144), ("g6.16xlarge", 1, 3.3968), ("g6.12xlarge", 4, 4.6016),
        ("g6.24xlarge", 4, 6.6752), ("g6.48xlarge", 8, 13.3504),
    ])
    + _inst("sagemaker", "L4", [
        ("ml.g6.xlarge", 1, 1.006), ("ml.g6.2xlarge", 1, 1.222), ("ml.g6.4xlarge", 1, 1.654),
        ("ml.g6.8xlarge", 1, 2.518), ("ml.g6.16xlarge", 1, 4.246), ("ml.g6.12xlarge", 4, 5.752),
        ("ml.g6.24xlarge", 4, 8.344), ("ml.g6.48xlarge", 8, 16.688),
    ])
    + _inst("gcp", "L4", [
        ("g2-standard-4", 1, 0.7068), ("g2-standard-8", 1, 0.8536), ("g2-standard-12", 1, 1.0004),
        ("g2-standard-16", 1, 1.1472), ("g2-standard-32", 1, 1.7344), ("g2-standard-24", 2, 2.0008),
        ("g2-standard-48", 4, 4.0017), ("g2-standard-96", 8, 8.0033),
    ])
)

_L40S = (
    _inst("aws", "L40S", [
        ("g6e.xlarge", 1, 1.861), ("g6e.2xlarge", 1, 2.242), ("g6e.4xlarge", 1, 3.004),
        ("g6e.8xlarge", 1, 4.529), ("g6e.16xlarge", 1, 7.577), ("g6e.12xlarge", 4, 10.493),
        ("g6e.24xlarge", 4, 15.066), ("g6e.48xlarge", 8, 30.131),
    ])
    + _inst("sagemaker", "L40S", [
        ("ml.g6e.xlarge", 1, 2.326), ("ml.g6e.2xlarge", 1, 2.803), ("ml.g6e.4xlarge", 1, 3.755),
        ("ml.g6e.8xlarge", 1, 5.661), ("ml.g6e.16xlarge", 1, 9.471), ("ml.g6e.12xlarge", 4, 13.117),
        ("ml.g6e.24xlarge", 4, 18.832), ("ml.g6e.48xlarge", 8, 37.664),
    ])
)

_A100_40 = (
    _inst("aws", "A100-40GB", [("p4d.24xlarge", 8, 21.96)])
    + _inst("sagemaker", "A100-40GB", [("ml.p4d.24xlarge", 8, 37.688)])
    + _inst("gcp", "A100-40GB", [
        ("a2-highgpu-1g", 1, 3.6733), ("a2-highgpu-2g", 2, 7.3466), ("a2-highgpu-4g", 4, 14.6933),
        ("a2-highgpu-8g", 8, 29.3866), ("a2-megagpu-16g", 16, 55.7395),
    ])
)

_A100_80 = (
    _inst("aws", "A100-80GB", [("p4de.24xlarge", 8, 27.45)])
    + _inst("sagemaker", "A100-80GB", [("ml.p4de.24xlarge", 8, None)])
    + _inst("gcp", "A100-80GB", [
        ("a2-ultragpu-1g", 1, 5.0688), ("a2-ultragpu-2g", 2, 10.1376),
        ("a2-ultragpu-4g", 4, 20.2752), ("a2-ultragpu-8g", 8, 40.5504),
    ])
)

_H100 = (
    _inst("aws", "H100", [("p5.4xlarge", 1, 6.88), ("p5.48xlarge", 8, 55.04)])
    + _inst("sagemaker", "H100", [("ml.p5.48xlarge", 8, 113.07)])
    # a3-highgpu comes in 1, 2, 4 and 8 GPUs, priced per GPU (8g / 8 each).
    + _inst("gcp", "H100", [("a3-highgpu-1g", 1, 11.0317), ("a3-highgpu-2g", 2, 22.0635),
                            ("a3-highgpu-4g", 4, 44.127), ("a3-highgpu-8g", 8, 88.2539),
                            ("a3-megagpu-8g", 8, None)])
)

_H200 = (
    _inst("aws", "H200", [("p5e.48xlarge", 8, None), ("p5en.48xlarge", 8, None)])
    + _inst("sagemaker", "H200", [("ml.p5e.48xlarge", 8, None), ("ml.p5en.48xlarge", 8, None)])
    + _inst("gcp", "H200", [("a3-ultragpu-8g", 8, None)])
)

_B200 = (
    _inst("aws", "B200", [("p6-b200.48xlarge", 8, None)])
    + _inst("sagemaker", "B200", [("ml.p6-b200.48xlarge", 8, None)])
    + _inst("gcp", "B200", [("a4-highgpu-8g", 8, None)])
)

CATALOGUE: dict[str, GPU] = {
    g.name: g
    for g in (
        # A10G: AWS-only A10 variant; NVIDIA publishes no A10G datasheet. 70 TFLOP/s is the
        # commonly quoted dense bf16 figure (the A10 is 125); treat it as approximate.
        # T4 and V100: Turing and Volta, no bf16 (vLLM needs fp16 there).
        GPU("T4", "NVIDIA", 16, "GiB", 15360 * _MIB, 65.0, 320.0, "Turing, PCIe, 16 GB GDDR6", _T4, bf16=False),
        GPU("V100", "NVIDIA", 16, "GiB", 16160 * _MIB, 125.0, 900.0, "Volta, SXM2, 16 GB HBM2", _V100,
            bf16=False),
        GPU("A10G", "NVIDIA", 24, "GiB", 23028 * _MIB, 70.0, 600.0, "Ampere, PCIe, 24 GB GDDR6", _A10G),
        GPU("L4", "NVIDIA", 24, "GiB", 23034 * _MIB, 121.0, 300.0, "Ada, PCIe, 24 GB GDDR6", _L4),
        GPU("L40S", "NVIDIA", 48, "GiB", 46068 * _MIB, 362.05, 864.0, "Ada, PCIe, 48 GB GDDR6", _L40S),
        GPU("A100-40GB", "NVIDIA", 40, "GiB", 40960 * _MIB, 312.0, 1555.0,
            "Ampere, SXM4, 40 GB HBM2", _A100_40),
        GPU("A100-80GB", "NVIDIA", 80, "GiB", 81920 * _MIB, 312.0, 2039.0,
            "Ampere, SXM4, 80 GB HBM2e", _A100_80),
        GPU("H100", "NVIDIA", 80, "GiB", 81559 * _MIB, 989.4, 3350.0, "Hopper, SXM5, 80 GB HBM3", _H100),
        GPU("H200", "NVIDIA", 141, "GiB", 143771 * _MIB, 989.4, 4800.0,
            "Hopper, SXM5, 141 GB HBM3e", _H200),
        # B200: NVIDIA first announced 192 GB (8 x 24 GiB stacks); the HGX/DGX B200 datasheets
        # list 180 GB per GPU (1,440 GB per 8), which is what the driver exposes (~179 GiB).
        GPU("B200", "NVIDIA", 180, "GiB", 183359 * _MIB, 2250.0, 8000.0,
            "Blackwell, HGX SXM, 180 GB HBM3e (datasheet; 192 GB physical)", _B200),
        # MI300X: no AWS or GCP offering; on-prem (or other clouds) only.
        GPU("MI300X", "AMD", 192, "GiB", 205822885888, 1307.4, 5300.0, "CDNA 3, OAM, 192 GB HBM3", ()),
    )
}


class UnknownGPU(ValueError):
    """A GPU name the catalogue does not hold; the message carries a did-you-mean."""


# Names that stand for several catalogue entries: a spec must say which.
AMBIGUOUS: dict[str, tuple[str, ...]] = {"A100": ("A100-40GB", "A100-80GB")}


def gpu_problem(name: str) -> str | None:
    """Why `name` names no single catalogue GPU (ambiguous or unknown), or None."""
    key = name.strip().upper()
    if key in AMBIGUOUS:
        return f"'{name}' is ambiguous: write {' or '.join(AMBIGUOUS[key])}"
    try:
        gpu(name)
    except UnknownGPU as e:
        return str(e)
    return None


def gpu_names() -> tuple[str, ...]:
    return tuple(CATALOGUE)


def gpu(name: str | GPU) -> GPU:
    """The catalogue entry for a canonical GPU name, matched case-insensitively."""
    if isinstance(name, GPU):
        return name
    by_lower = {k.lower(): v for k, v in CATALOGUE.items()}
    found = by_lower.get(str(name).strip().lower())
    if found is not None:
        return found
    if str(name).strip().upper() in AMBIGUOUS:
        raise UnknownGPU(f"'{name}' is ambiguous: write {' or '.join(AMBIGUOUS[str(name).strip().upper()])}")
    best = did_you_mean(str(name).strip().lower(), by_lower)
    hint = f"; did you mean '{by_lower[best].name}'?" if best else ""
    raise UnknownGPU(f"unknown GPU '{name}'{hint} (known: {', '.join(CATALOGUE)})")


def provider_name(provider: str) -> Provider:
    """Normalise a provider name ('local' counts as on-prem); ValueError when unknown."""
    p = _PROVIDER_ALIASES.get(provider.strip().lower(), provider.strip().lower())
    if p not in PROVIDERS:
        best = did_you_mean(p, PROVIDERS)
        hint = f"; did you mean '{best}'?" if best else ""
        raise ValueError(f"unknown provider '{provider}'{hint} (known: {', '.join(PROVIDERS)})")
    return p  # type: ignore[return-value]


def instances_for(g: GPU | str, provider: str, count: int = 1) -> list[Instance]:
    """Instance types of `provider` holding at least `count` GPUs of this kind.

    Smallest first: fewest GPUs, then cheapest (unknown price last), then by name. On-prem
    has no fixed shapes, so it answers one node of exactly `count` GPUs with no price.
    An empty list means the provider offers no single instance that large (or none at all).
    """
    g = gpu(g) if isinstance(g, str) else g
    if count < 1:
        raise ValueError(f"GPU count must be at least 1, got {count}")
    p = provider_name(provider)
    if p == "onprem":
        return [Instance(f"{g.name.lower()}-x{count}", "onprem", g.name, count, None, None)]
    rows = [i for i in g.instances if i.provider == p and i.gpu_count >= count]
    inf = float("inf")
    return sorted(rows, key=lambda i: (i.gpu_count, inf if i.usd_per_hour is None else i.usd_per_hour, i.name))


def instance(name: str) -> Instance:
    """Look an instance type up by exact name across every GPU and provider."""
    every = {i.name: i for g in CATALOGUE.values() for i in g.instances}
    if name in every:
        return every[name]
    best = did_you_mean(name, every)
    hint = f"; did you mean '{best}'?" if best else ""
    raise ValueError(f"unknown instance type '{name}'{hint}")


# ---- CPU instances (classical models on SageMaker) -------------------------------------------


@dataclass(frozen=True, slots=True)
class CpuInstance:
    """A CPU instance type a classical model serves on (SageMaker real-time inference)."""

    name: str
    vcpus: int
    memory_gib: int
    usd_per_hour: float  # on-demand list price, us-east-1, approximate (see PRICES_AS_OF)


# General purpose (m5, m6i) and compute optimised (c5), SageMaker real-time inference.
CPU_FAMILIES = ("ml.m5", "ml.c5", "ml.m6i")
CPU_INSTANCES: dict[str, CpuInstance] = {i.name: i for i in (
    CpuInstance("ml.m5.large", 2, 8, 0.115), CpuInstance("ml.m5.xlarge", 4, 16, 0.23),
    CpuInstance("ml.m5.2xlarge", 8, 32, 0.461), CpuInstance("ml.m5.4xlarge", 16, 64, 0.922),
    CpuInstance("ml.m5.12xlarge", 48, 192, 2.765), CpuInstance("ml.m5.24xlarge", 96, 384, 5.53),
    CpuInstance("ml.c5.large", 2, 4, 0.102), CpuInstance("ml.c5.xlarge", 4, 8, 0.204),
    CpuInstance("ml.c5.2xlarge", 8, 16, 0.408), CpuInstance("ml.c5.4xlarge", 16, 32, 0.816),
    CpuInstance("ml.c5.9xlarge", 36, 72, 1.836), CpuInstance("ml.c5.18xlarge", 72, 144, 3.672),
    CpuInstance("ml.m6i.large", 2, 8, 0.121), CpuInstance("ml.m6i.xlarge", 4, 16, 0.242),
    CpuInstance("ml.m6i.2xlarge", 8, 32, 0.484), CpuInstance("ml.m6i.4xlarge", 16, 64, 0.968),
    CpuInstance("ml.m6i.8xlarge", 32, 128, 1.935), CpuInstance("ml.m6i.12xlarge", 48, 192, 2.903),
    CpuInstance("ml.m6i.16xlarge", 64, 256, 3.87), CpuInstance("ml.m6i.24xlarge", 96, 384, 5.806),
    CpuInstance("ml.m6i.32xlarge", 128, 512, 7.741),
)}


def cpu_instance(name: str) -> CpuInstance | None:
    return CPU_INSTANCES.get(name)
