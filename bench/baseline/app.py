"""Cold-start baseline: the smallest real handler a user would deploy (boto3 + the Powertools Logger)."""

import boto3  # noqa: F401
from aws_lambda_powertools import Logger

logger = Logger()


def lambda_handler(event, context):
    return {"statusCode": 200, "body": "{}"}
