# S3 model mirror: push, pull, promote and list versions of wine_quality.
#
# The local default talks to the moto stand-in: run `make moto` in one terminal and
# `make moto-bucket` once, then `make push`, `make promote MODEL_VERSION=<v>`, `make pull`.
# Against real S3: `make push S3=aws WINEQ_TRAIN_S3_BUCKET=<bucket>`; credentials then come
# only from the standard AWS chain (profile, SSO, role), never from this file.

MOTO_PORT ?= 5000
S3 ?= local

ifeq ($(S3),local)
# Dummy credentials are what moto accepts; they are not secrets.
MIRROR_ENV := env AWS_ENDPOINT_URL=http://127.0.0.1:$(MOTO_PORT) \
	AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1 \
	WINEQ_TRAIN_S3_BUCKET=$(or $(WINEQ_TRAIN_S3_BUCKET),wineq-models-local)
else
MIRROR_ENV :=
endif

.PHONY: moto moto-bucket push pull promote list-versions

moto: ## Run the local S3 stand-in (moto server) on 127.0.0.1:5000 in the foreground
	$(PY) -m moto.server -H 127.0.0.1 -p $(MOTO_PORT)

moto-bucket: ## Create the local mirror bucket (versioned) in the running moto server
	$(MIRROR_ENV) $(PY) -c 'import boto3, os; b = os.environ["WINEQ_TRAIN_S3_BUCKET"]; \
		s3 = boto3.client("s3"); s3.create_bucket(Bucket=b); \
		s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"}); print(b)'

push: ## Push a model store entry to the S3 mirror (MODEL_TAG=wine_quality:<v>, default latest)
	$(MIRROR_ENV) $(PY) -m training push $(if $(MODEL_TAG),--tag $(MODEL_TAG))

pull: ## Pull a version from the S3 mirror into the local store (MODEL_VERSION=<v>, default champion)
	$(MIRROR_ENV) $(PY) -m training pull $(if $(MODEL_VERSION),--version $(MODEL_VERSION))

promote: ## Make MODEL_VERSION=<v> the champion in the S3 mirror
	@test -n "$(MODEL_VERSION)" || { echo "usage: make promote MODEL_VERSION=<version>" >&2; exit 2; }
	$(MIRROR_ENV) $(PY) -m training promote --version $(MODEL_VERSION)

list-versions: ## Table of the versions in the S3 mirror: date, champion ('*'), accuracy per wine type
	$(MIRROR_ENV) $(PY) -m training list-versions
