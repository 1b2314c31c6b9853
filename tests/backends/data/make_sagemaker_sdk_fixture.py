"""Regenerates sagemaker_sdk_v3_churn.json: the sagemaker v3 SDK's own definition of a
pipeline comparable to specops' churn pipeline (processing -> training -> evaluation with a
PropertyFile -> ConditionStep on JsonGet with a FailStep), built offline.

Not run by the tests (the SDK is not a specops dependency). It was generated in a throwaway
venv: `pip install sagemaker-core==2.27.0` plus `pip install --no-deps sagemaker-mlops==1.27.0
sagemaker-train==1.27.0 sagemaker-serve==1.27.0` and graphene, docker, tqdm, psutil; then
`python make_sagemaker_sdk_fixture.py | python -m json.tool --sort-keys --indent 2`.
"""
import os

os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
                  AWS_EC2_METADATA_DISABLED="true", SAGEMAKER_VALIDATE_ROLE="false")
import boto3
from sagemaker.core.processing import Processor
from sagemaker.core.shapes import ProcessingInput, ProcessingOutput, ProcessingS3Input, ProcessingS3Output
from sagemaker.core.workflow.conditions import ConditionGreaterThanOrEqualTo
from sagemaker.core.workflow.functions import JsonGet
from sagemaker.core.workflow.parameters import ParameterString
from sagemaker.core.workflow.pipeline_context import PipelineSession
from sagemaker.core.workflow.properties import PropertyFile
from sagemaker.mlops.workflow.condition_step import ConditionStep
from sagemaker.mlops.workflow.fail_step import FailStep
from sagemaker.mlops.workflow.pipeline import Pipeline
from sagemaker.mlops.workflow.steps import ProcessingStep, TrainingStep
from sagemaker.train import ModelTrainer
from sagemaker.train.configs import Compute, InputData, OutputDataConfig

ROLE = "arn:aws:iam::123456789012:role/specops-sagemaker"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/specops-runtime:0.1.0"
sess = PipelineSession(boto_session=boto3.Session(region_name="us-east-1"), default_bucket="acme-ml-prod-artifacts")
itype = ParameterString(name="ProcessingInstanceType", default_value="ml.m5.large")
proc = Processor(role=ROLE, image_uri=IMAGE, instance_count=1, instance_type=itype, sagemaker_session=sess,
                 entrypoint=["python", "-m", "specops.runtime"])
check = ProcessingStep(name="check-customers", step_args=proc.run(
    outputs=[ProcessingOutput(output_name="output", s3_output=ProcessingS3Output(local_path="/opt/ml/processing/output",
                              s3_uri="s3://acme-ml-prod-artifacts/prod/churn/sagemaker/steps/check-customers", s3_upload_mode="EndOfJob"))],
    arguments=["data_check"]))
trainer = ModelTrainer(training_image=IMAGE, role=ROLE, sagemaker_session=sess,
                       compute=Compute(instance_type="ml.m5.large", instance_count=1),
                       output_data_config=OutputDataConfig(s3_output_path="s3://acme-ml-prod-artifacts/prod/churn/sagemaker/steps/train", compression_type="NONE"),
                       hyperparameters={"specops.argv": "[]"})
train = TrainingStep(name="train", step_args=trainer.train(input_data_config=[
    InputData(channel_name="input-data", data_source=check.properties.ProcessingOutputConfig.Outputs["output"].S3Output.S3Uri)]))
metrics = PropertyFile(name="metrics", output_name="output", path="metrics.json")
ev = ProcessingStep(name="evaluate", property_files=[metrics], step_args=proc.run(
    inputs=[ProcessingInput(input_name="input-model", s3_input=ProcessingS3Input(s3_uri=train.properties.ModelArtifacts.S3ModelArtifacts,
                            local_path="/opt/ml/processing/input/model", s3_data_type="S3Prefix", s3_input_mode="File"))],
    outputs=[ProcessingOutput(output_name="output", s3_output=ProcessingS3Output(local_path="/opt/ml/processing/output",
                              s3_uri="s3://acme-ml-prod-artifacts/prod/churn/sagemaker/steps/evaluate", s3_upload_mode="EndOfJob"))],
    arguments=["evaluate"]))
fail = FailStep(name="gate-churn-auc-failed", error_message="gate failed")
gate = ConditionStep(name="gate-churn-auc", conditions=[ConditionGreaterThanOrEqualTo(
    left=JsonGet(step_name=ev.name, property_file=metrics, json_path="auc"), right=0.7)],
    if_steps=[], else_steps=[fail])
p = Pipeline(name="churn-classifier-prod", parameters=[itype], steps=[check, train, ev, gate], sagemaker_session=sess)
print(p.definition())
