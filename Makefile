# The two quick-start commands are `make run` and `make test`; see README.md.
.PHONY: run test stress lint format bench docs dr-drill purchase-drill cluster cluster-stop failover-drill cluster-load

run:            ## venv, install, migrate, demo data, serve on http://127.0.0.1:8000 (SQLite by default)
	scripts/run.sh

test:           ## whole default test suite on PostgreSQL
	scripts/test.sh

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
	scripts/dr-drill.sh $(ARGS)
cluster:        ## HAProxy, 2 app servers, PgBouncer, primary + synchronous standby, 2 workers (docs/operations/cluster.md)
	deploy/cluster.sh start

cluster-stop:   ## stops everything `make cluster` started and removes .cluster/
	deploy/cluster.sh stop

failover-drill: ## under load: kill an app server, SIGKILL the primary, promote the standby; prove nothing acknowledged is lost
	deploy/failover_drill.sh

cluster-load:   ## capacity figures of a running `make cluster` (closed-loop clients through HAProxy)
	. .cluster/env && .venv/bin/python deploy/cluster_load.py $(ARGS)
