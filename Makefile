# The two commands of the README, and a few conveniences around them.
.PHONY: run test seed bench-feed stack-up stack-down

run:  ## install into .venv if needed and run photostream (embedded) on http://127.0.0.1:8000
	@scripts/ensure-venv.sh
	.venv/bin/photostream serve

test:  ## the whole test suite; fetches and starts what it needs
	@scripts/test.sh

seed:  ## seed the Reed College graph into ./data
	@scripts/ensure-venv.sh
	.venv/bin/photostream seed --graph ../shared/datasets/socfb-Reed98/socfb-Reed98.edges

bench-feed:  ## feed latency with wrk against a seeded ./data
	@scripts/ensure-venv.sh test
	.venv/bin/python bench/feed_latency.py --data-dir data

stack-up:
	@scripts/ensure-venv.sh
	.venv/bin/photostream stack up

stack-down:
	@scripts/ensure-venv.sh
	.venv/bin/photostream stack down
