"""dvdlib.book: the tools that build and run the book, and the ``dvd`` command.

The science is :mod:`dvdlib`; this package only drives it. Imports go one way: modules here import
``dvdlib``'s science modules, and no module of ``dvdlib`` outside this package imports this one
(``tests/test_import_graph.py`` checks it from the source). A subpackage rather than a second
top-level package keeps the repository's top level as the design has it: ``book/`` (the
chapters and pages), ``dvdlib/`` (the code, installed as one distribution) and ``tests/``; the
folder name says which code serves the book.

By concern:

- the chapters: ``chapters`` (the table of chapters, from ``_toc.yml``), ``headlines`` (the few
  numbers a chapter saves for the landing page and sweep summaries; the one module of this package
  that chapters import).
- executing a notebook: ``execute`` (the one papermill executor: a child process, progress per
  cell, a failure named by its cell, an output notebook that carries its own finished-run record),
  ``chapter_cache`` (the key an executed chapter is cached under: the notebook, its parameters and
  the dvdlib code it can read).
- the book: ``build`` (execute every chapter, cached; fill the pages; render with Jupyter Book),
  ``sphinx_extension`` (loaded by Jupyter Book from ``_config.yml``).
- runs and sweeps: ``parameters`` (a notebook's declared parameters and their checks, renamed
  parameters refused with their new names), ``runs`` (run folders named by their parameters; a
  chapter run into one, a sweep over a grid with its summary).
- the ``dvd`` command: ``cli`` (the entry point, where every command is registered) and
  ``commands`` (one module per command: its arguments, and a thin body that imports the work
  only when the command runs).
"""
