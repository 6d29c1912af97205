# secpod developer targets. `make test` and `make demo` run as root on a fresh
# Debian 12 machine: they install what is missing and make the unprivileged
# user that secpod runs as (secpod itself refuses root).
PYTEST_ARGS ?=

.PHONY: dev test lint demo bench

dev:
	bash scripts/test-env.sh --setup-only

test:
	bash scripts/test-env.sh $(PYTEST_ARGS)

lint:
	/var/tmp/secpod-ci/venv/bin/ruff check secpod tests bench
	/var/tmp/secpod-ci/venv/bin/mypy secpod

demo:
	bash scripts/demo.sh

bench:
	bash scripts/bench.sh
