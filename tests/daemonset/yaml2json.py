#!/usr/bin/env python3
"""A multi-document YAML stream on stdin (kubectl kustomize output) as one JSON list on stdout."""
import json
import sys

import yaml

json.dump([d for d in yaml.safe_load_all(sys.stdin) if d is not None], sys.stdout)
