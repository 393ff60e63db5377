"""Cold-start baseline doing the same work as a check, the way a user would write it by hand.

Parse the API Gateway body, read the provider key from the secret, `requests.post` the selfie to the
provider, `put_item` the result, `put_events` it — with boto3, requests and the Powertools Logger,
nothing else (no validation, no image preparation, no idempotency). The ratio of a function's cold
start to this one measures our own start-up, not work every implementation has to do.
"""

import json
import os
import time
import uuid

import boto3
import requests
from aws_lambda_powertools import Logger

logger = Logger()


def lambda_handler(event, context):
    body = json.loads(event["body"])
    secret = json.loads(
        boto3.client("secretsmanager").get_secret_value(SecretId=os.environ["PROVIDER_SECRET_ID"])["SecretString"]
    )
    answer = requests.post(
        f"{os.environ['JUHE_BASE_URL']}/verifyface/verify",
        data={
            "key": secret["juhe_verifyface_key"],
            "realname": body["name"],
            "idcard": body["id_number"],
            "image": body["image"],
        },
        timeout=10,
    ).json()
    record = {"verification_id": f"b{uuid.uuid4().hex}", "error_code": answer.get("error_code"), "at": int(time.time())}
    boto3.client("dynamodb").put_item(
        TableName=os.environ["VERIFICATIONS_TABLE"],
        Item={
            "verification_id": {"S": record["verification_id"]},
            "status": {"S": "baseline"},
            "expires_at": {"N": str(record["at"] + 3600)},
        },
    )
    boto3.client("events").put_events(
        Entries=[
            {
                "Source": "bench.baseline",
                "DetailType": "Baseline",
                "Detail": json.dumps(record),
                "EventBusName": os.environ["EVENT_BUS_NAME"],
            }
        ]
    )
    return {"statusCode": 200, "body": json.dumps(record)}
