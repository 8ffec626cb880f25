"""The pricing engine: the only code that turns usage into money.

- ``tiers``: pure arithmetic — included quantities, per-unit, package, graduated and volume pricing, proration.
- ``engine``: plan segments, ``rate`` and ``charges_many`` / ``charges_estimate`` (loads usage and plans,
  prices them); invoices, the charges API, budgets and the portal all bill or show its output.
- ``allocation``: each line's amount shared among tenants and master partners.
"""
