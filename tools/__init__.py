"""Developer tools and experiments: not part of the installed package (wizard/).

    python -m tools.build_demo_base      # rebuild wizard/assets/demo-base (the shipped demo base)
    python -m tools.check_adapt          # the experiment behind recipes/demo-shapes.yaml's settings

May import wizard (they run from a checkout); nothing in wizard/ imports them.
"""
