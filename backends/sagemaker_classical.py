"""A classical model on a SageMaker real-time endpoint: the scikit-learn framework container.

The model is the registered model folder in the artifact store (`model_artifact_uri`, read
uncompressed through `ModelDataSource.S3DataSource`, CompressionType None). The container is
AWS's scikit-learn inference image (`sagemaker-scikit-learn:1.2-1-cpu-py3`, registry accounts
per region from sagemaker-python-sdk image_uri_config/sklearn.json) with a user module: the
handler `templates/sagemaker/inference.py` and a `requirements.txt` pinning the libraries the
model was trained with (the container installs it at start, so the pickle loads with the
version that wrote it), packed into `sourcedir.tar.gz`, which the provider uploads next to the
serving files (`<artifact store>/<env>/<model>/serving/<name>/sourcedir-<sha>.tar.gz`) and
names in SAGEMAKER_SUBMIT_DIRECTORY. A node image that is an ECR image is used as given.

Request settings become the container's model-server settings: the timeout
SAGEMAKER_MODEL_SERVER_TIMEOUT (seconds, rounded up) and concurrency
SAGEMAKER_MODEL_SERVER_WORKERS (each worker serves one request at a time).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from importlib.resources import files
from typing import Any

from specops.ir import Serving

SKLEARN_REPOSITORY = "sagemaker-scikit-learn"
SKLEARN_TAG = "1.2-1-cpu-py3"
SKLEARN_ACCOUNTS: dict[str, str] = {
    "af-south-1": "510948584623", "ap-east-1": "651117190479", "ap-northeast-1": "354813040037",
    "ap-northeast-2": "366743142698", "ap-northeast-3": "867004704886", "ap-south-1": "720646828776",
    "ap-south-2": "628508329040", "ap-southeast-1": "121021644041", "ap-southeast-2": "783357654285",
    "ap-southeast-3": "951798379941", "ap-southeast-4": "106583098589", "ca-central-1": "341280168497",
    "cn-north-1": "450853457545", "cn-northwest-1": "451049120500", "eu-central-1": "492215442770",
    "eu-central-2": "680994064768", "eu-north-1": "662702820516", "eu-west-1": "141502667606",
    "eu-west-2": "764974769150", "eu-west-3": "659782779980", "eu-south-1": "978288397137",
    "eu-south-2": "104374241257", "me-south-1": "801668240914", "me-central-1": "272398656194",
    "sa-east-1": "737474898029", "us-east-1": "683313688378", "us-east-2": "257758044811",
    "us-gov-west-1": "414596584902", "us-gov-east-1": "237065988967", "us-west-1": "746614075791",
    "us-west-2": "246618743249",
}
# The libraries a specops-trained model pickles, at the versions .ci/constraints.txt pins (a
# test holds the two together).
PINNED = {"scikit-learn": "1.9.1", "joblib": "1.6.0", "xgboost": "3.2.0", "lightgbm": "4.7.0"}
SOURCEDIR = "sourcedir.tar.gz"


def sklearn_image(region: str) -> str:
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{SKLEARN_ACCOUNTS[region]}.dkr.ecr.{region}.{domain}/{SKLEARN_REPOSITORY}:{SKLEARN_TAG}"


def requirements(node: Serving) -> bytes:
    libs = ["scikit-learn", "joblib"] + ([node.runtime] if node.runtime in ("xgboost", "lightgbm") else [])
    return "".join(f"{lib}=={PINNED[lib]}\n" for lib in libs).encode()


def sourcedir(node: Serving) -> bytes:
    """The user module as a tar.gz, byte-identical for identical input (no times, no owners)."""
    members = {"inference.py": files("specops.templates").joinpath("sagemaker", "inference.py").read_bytes(),
               "requirements.txt": requirements(node)}
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def sourcedir_uri(node: Serving, data: bytes) -> str:
    store = node.model_artifact_uri.rsplit("/model", 1)[0] if node.model_artifact_uri else ""
    return f"{store}/serving/{node.name}/sourcedir-{hashlib.sha256(data).hexdigest()[:16]}.tar.gz"


def container(node: Serving, image: str | None, submit_dir: str) -> dict[str, Any]:
    """PrimaryContainer of CreateModel."""
    env = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": submit_dir,
           "SAGEMAKER_CONTAINER_LOG_LEVEL": "20", "SAGEMAKER_REGION": node.target.region or ""}
    if node.model_revision:
        # A retrained model is a new SageMaker Model (its name hashes this), so the endpoint moves.
        env["SPECOPS_MODEL_REVISION"] = node.model_revision
    if node.request_timeout_ms is not None:
        env["SAGEMAKER_MODEL_SERVER_TIMEOUT"] = str(-(-node.request_timeout_ms // 1000))
    if node.max_concurrency is not None:
        env["SAGEMAKER_MODEL_SERVER_WORKERS"] = str(node.max_concurrency)
    for e in node.env_vars:  # literal env; secrets are refused by check
        if e.secret is None and e.value is not None:
            env[e.name] = e.value
    uri = (node.model_artifact_uri or "").rstrip("/") + "/"
    return {"Environment": env, "Image": image or sklearn_image(node.target.region or ""), "Mode": "SingleModel",
            "ModelDataSource": {"S3DataSource": {"CompressionType": "None", "S3DataType": "S3Prefix",
                                                 "S3Uri": uri}}}
