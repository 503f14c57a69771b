# Each target sets up what it needs (virtual environment, packages, Fashion-MNIST) when missing.
.PHONY: setup bench test speed clean

setup:
	bash scripts/prunebench.sh setup

bench:
	bash scripts/prunebench.sh bench $(ARGS)

test:
	bash scripts/prunebench.sh test

speed:
	bash scripts/prunebench.sh speed $(ARGS)

clean:
	rm -rf results/runs results/plots results/leaderboard.* .pytest_cache
