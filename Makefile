# Two entry points on a fresh machine (Python 3.11): `make sandbox` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: sandbox test lint bench clean package deploy undeploy

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

## Run the main job on the embedded default: emulated AWS + local Kubernetes API seeded with the sample app.
sandbox: $(STAMP)
	$(BIN)/python -m sandbox

## Static checks and the whole test suite.
test: $(STAMP) lint
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/cfn-lint infra/*.yaml

bench: $(STAMP)
	$(BIN)/python bench/backup.py
	$(BIN)/python bench/restore.py
	$(BIN)/python bench/replicate.py
	$(BIN)/python bench/gc.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/cold.py

STAGE ?= dev
## Merged template (chalice package + infra/lifeboat.yaml) into out/$(STAGE)/.
package: $(STAMP)
	$(BIN)/python infra/deploy.py package --stage $(STAGE)

## Replica stack in the replica region, then the primary stack; prints the outputs (API URL, bucket, table).
## PARAMS="SubnetIds=subnet-a,subnet-b SecurityGroupIds=sg-x VpcId=vpc-y" sets primary stack parameters.
deploy: $(STAMP)
	$(BIN)/python infra/deploy.py deploy --stage $(STAGE) $(foreach p,$(PARAMS),--parameter $(p))

## Deletes both stacks; buckets, table and keys are retained (the command lists them).
undeploy: $(STAMP)
	$(BIN)/python infra/deploy.py undeploy --stage $(STAGE)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
