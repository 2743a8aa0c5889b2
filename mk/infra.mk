# Infrastructure and delivery checks: terraform/, .github/workflows/, tests/infra/.
# The scanners live in .tools/ (self-ignored by git): checkov and zizmor in their own
# venv from requirements/tools.lock (they conflict with the project's pins), and the
# npm tool at one exact version, installed without a package-lock.

TOOLS_DIR := .tools
TOOLS_VENV := $(TOOLS_DIR)/venv
CHECKOV := $(TOOLS_VENV)/bin/checkov
ZIZMOR := $(TOOLS_VENV)/bin/zizmor
ACTION_VALIDATOR := $(TOOLS_DIR)/node_modules/.bin/action-validator
ACTION_VALIDATOR_VERSION := 0.6.0
# Top-level pins of requirements/tools.lock; `make tools-lock` re-resolves the rest.
CHECKOV_VERSION := 3.3.30
ZIZMOR_VERSION := 1.32.0
WORKFLOWS := $(wildcard .github/workflows/*.yml .github/workflows/*.yaml)

# checkov must not phone home for its guideline mapping; the machines reach only package registries.
export BC_SKIP_MAPPING := TRUE

.PHONY: tools
tools: $(TOOLS_VENV)/.installed $(ACTION_VALIDATOR) ## Install checkov, zizmor (requirements/tools.lock) and action-validator into .tools/

$(TOOLS_DIR)/.gitignore:
	mkdir -p $(TOOLS_DIR)
	echo '*' > $@

$(TOOLS_VENV)/.installed: requirements/tools.lock | $(TOOLS_DIR)/.gitignore
	test -x $(TOOLS_VENV)/bin/python || python3.11 -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install -q --require-hashes -r requirements/tools.lock
	touch $@

$(ACTION_VALIDATOR): | $(TOOLS_DIR)/.gitignore
	npm install --prefix $(TOOLS_DIR) --no-save --no-package-lock --no-audit --no-fund \
		@action-validator/cli@$(ACTION_VALIDATOR_VERSION)

.PHONY: tools-lock
tools-lock: ## Re-pin requirements/tools.lock (checkov, zizmor) with hashes
	printf 'checkov==$(CHECKOV_VERSION)\nzizmor==$(ZIZMOR_VERSION)\n' | \
		$(VENV)/bin/uv pip compile --generate-hashes --no-header --python-version 3.11 - -o requirements/tools.lock
	! grep -n '://' requirements/tools.lock

.PHONY: checkov
checkov: ## checkov over terraform/ and the workflows (every skip is inline, with its reason)
	$(CHECKOV) --quiet --compact --skip-download \
		-d terraform -d .github/workflows --framework terraform github_actions

.PHONY: zizmor
zizmor: ## zizmor (offline) over the GitHub workflows
	$(ZIZMOR) --offline .github/workflows

.PHONY: action-validator
action-validator: ## Validate every workflow against the GitHub Actions schema
	@for workflow in $(WORKFLOWS); do \
		$(ACTION_VALIDATOR) "$$workflow" || exit 1; \
		echo "valid: $$workflow"; \
	done

.PHONY: terraform-fmt
terraform-fmt: ## terraform fmt -check (no providers needed; skipped with a notice when terraform is absent)
	@if command -v terraform >/dev/null 2>&1; then \
		terraform fmt -check -recursive -diff terraform && echo "terraform fmt: clean"; \
	else \
		echo "terraform not installed: fmt check left to CI's setup-terraform step"; \
	fi

.PHONY: infra-check
infra-check: install tools terraform-fmt ## All infra checks: terraform fmt plus tests/infra (contract, checkov, zizmor, action-validator)
	$(PY) -m pytest tests/infra -q
