"""Development tools run from the checkout: demo, bench and a local stack.

The runtime path never imports them.
"""
