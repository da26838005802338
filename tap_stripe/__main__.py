from tap_stripe.tap import cli

cli()
