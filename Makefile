# The two quick-start commands are `make run` and `make test`; see README.md.
.PHONY: run test stress lint format bench docs dr-drill production-drill purchase-drill cluster cluster-stop failover-drill cluster-load

# GNU make exits 2 whenever a recipe fails, whatever code the script gave, so cron and CI
# cannot tell a drill's "differences found" (1) from "could not run" (2) through make.
# $(call script,COMMAND,MEANING) runs COMMAND and, when it fails, says its real code on
# stderr; to act on the code, run the script itself (scripts/dr-drill.sh exits 0, 1 or 2).
script = $(1) || { code=$$?; echo "make: $(firstword $(1)) exited $$code$(if $(2), ($(2))); make exits 2 for any failure: run $(firstword $(1)) directly to get its own code" >&2; exit $$code; }
DR_DRILL ?= scripts/dr-drill.sh

run:            ## venv, install, migrate, demo data, serve on http://127.0.0.1:8000 (SQLite by default)
	scripts/run.sh

test:           ## whole default test suite on PostgreSQL
	@$(call script,scripts/test.sh,pytest's exit code / 2: no PostgreSQL)

stress:         ## long stress runs (marker `stress`)
	scripts/test.sh -m stress

lint:
	scripts/bootstrap.sh requirements-dev.txt
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

format:
	.venv/bin/ruff check --fix . && .venv/bin/ruff format .

bench:          ## spend benchmarks (docs/performance.md): make bench [QUICK=1] [ARGS="--only ours"]
	scripts/bench.sh $(if $(QUICK),--quick) $(ARGS)

docs:           ## documentation site (MkDocs, strict) into site/: open site/index.html
	scripts/bootstrap.sh requirements-docs.txt
	NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict

purchase-drill: ## hundreds of purchases, refunds, disputes; webhooks duplicated, reordered, dropped (DRILL_PURCHASES=300)
	scripts/test.sh -m stress -s -q wallet/tests/purchases/test_purchase_drill.py

dr-drill:       ## backup + point-in-time restore drill on a throwaway cluster (docs/operations/backups.md)
	@$(call script,$(DR_DRILL) $(ARGS),1: differences found / 2: the drill could not run)
production-drill: ## docs/operations/production.md's "Starting it", run as written on a fresh database (about a minute)
	@$(call script,scripts/test.sh -m stress -s -p no:cacheprovider divine_whispers/tests/project/test_production_drill.py,pytest's exit code)

cluster:        ## HAProxy, 2 app servers, PgBouncer, Patroni (primary + synchronous standby) on a 3-member etcd, 2 workers (docs/operations/cluster.md)
	deploy/cluster.sh start

cluster-stop:   ## stops everything `make cluster` started and removes .cluster/
	deploy/cluster.sh stop

failover-drill: ## under load: SIGKILL, then SIGSTOP the primary, then lose etcd members; measure what Patroni does, prove nothing acknowledged is lost
	@$(call script,deploy/failover_drill.sh,non-zero: a finding / 2: could not run)

cluster-load:   ## capacity figures of a running `make cluster` (closed-loop clients through HAProxy)
	. .cluster/env && .venv/bin/python deploy/cluster_load.py $(ARGS)
