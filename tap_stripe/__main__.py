from tap_stripe.tap import TapStripe

TapStripe.cli()
