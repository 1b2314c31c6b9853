"""Backends: one module per target format, each with the same small surface.

`registry` is the one place that lists them: pipeline backends (`kfp`, `sagemaker`, `zenml`),
serving platforms (`local`, `kubernetes`, `kserve`, `helm` for vLLM production-stack values,
`sagemaker` for endpoint requests), and the provider module of each plan/apply resource type.
`vllm` emits the serve config every platform wraps. Heavy SDKs are imported inside the
functions that need them, so importing a backend module stays cheap.
"""
