"""``inferfleet traffic``: the multi-region traffic controller's weights, inputs and overrides.

Operators' overrides (drain, pin, with an expiry) and the controller's last decisions live in
two SSM parameters of the fleet, in the region of its global stack; :mod:`.store` reads and
writes them, :mod:`.report` shapes what ``status`` prints.
"""
