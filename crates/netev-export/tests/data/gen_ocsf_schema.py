#!/usr/bin/env python3
"""Regenerates ocsf-1.3.0-network_activity.schema.json (see README.md).

Needs the PyPI package ocsf-json-schema==1.2.0 (pure Python, no dependencies):
    python3 -m venv /tmp/ocsf && /tmp/ocsf/bin/pip install ocsf-json-schema==1.2.0
    /tmp/ocsf/bin/python gen_ocsf_schema.py > ocsf-1.3.0-network_activity.schema.json
"""
import json
import sys

from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

VERSION = "1.3.0"
# the profiles netev's OCSF events declare in metadata.profiles
PROFILES = ["host", "security_control"]

schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=VERSION))
name = schema.lookup_class_name_from_uid(4001)
json.dump(schema.get_class_schema(name, PROFILES), sys.stdout, indent=1, sort_keys=True)
sys.stdout.write("\n")
