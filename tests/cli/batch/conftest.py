import moto_server as moto_fixtures

moto_server = moto_fixtures.moto_server
moto = moto_fixtures.moto
