# Translates a SAM template the way CloudFormation's Serverless transform
# does, with the real aws-sam-translator, and prints the CloudFormation
# template as JSON. Local CodeUris become s3:// URIs first, as `sam package`
# does. Usage: python3 - template.yaml < translate.py
import json
import os
import sys

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402


class NoManagedPolicies:
    """The template names no AWS managed policies by name; nothing to look up."""

    def load(self):
        return {}


def packaged(tpl):
    for name, res in tpl.get("Resources", {}).items():
        if res.get("Type") == "AWS::Serverless::Function":
            props = res.setdefault("Properties", {})
            if "InlineCode" not in props and "ImageUri" not in props:
                props["CodeUri"] = "s3://packaged-artifacts/" + name + ".zip"
    glob = tpl.get("Globals", {}).get("Function", {})
    if "CodeUri" in glob:
        glob["CodeUri"] = "s3://packaged-artifacts/globals.zip"
    return tpl


with open(sys.argv[1]) as f:
    template = packaged(yaml_parse(f.read()))
region = os.environ["AWS_DEFAULT_REGION"]
out = transform(template, {"AWS::Region": region}, NoManagedPolicies())
json.dump(out, sys.stdout, default=str)
