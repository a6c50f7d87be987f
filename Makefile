# Shortcuts for the README's commands.
.PHONY: setup book test clean

setup:
	bash scripts/setup

book:
	bash scripts/book

test:
	bash scripts/test

clean:
	rm -rf _build
