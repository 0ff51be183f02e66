"""The multi-region traffic controller, shipped as Lambda code next to its construct.

:mod:`.weights` is the pure decision (standard library only): the Lambda handler, the local
rehearsal and the tests all call the same function. The construct zips this folder as the
function's code (no Docker bundling). Modules import each other relatively, so the same code
runs in Lambda (as ``traffic_controller.<module>``) and here (as
``inferfleet.constructs.traffic_controller.<module>``).
"""
