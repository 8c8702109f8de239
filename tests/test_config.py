"""Settings from the environment, as Cloud Foundry presents them."""
import json

import pytest

from automl.config import redis_url_from_vcap
from automl.state import ConfigurationError, open_state


def vcap(label, credentials, tags=()):
    return json.dumps({label: [{"name": "cache", "label": label, "tags": list(tags),
                                "credentials": credentials}]})


@pytest.mark.parametrize("services, url", [
    (vcap("p.redis", {"host": "10.0.0.5", "port": 6379, "password": "s3/cret"}, ["redis"]),
     "redis://:s3%2Fcret@10.0.0.5:6379/0"),
    (vcap("rediscloud", {"uri": "redis://u:p@host:1234"}), "redis://u:p@host:1234"),
    (vcap("p-redis", {"host": "h", "port": 6379, "tls_port": 6380, "password": "p"}),
     "rediss://:p@h:6380/0"),
    (vcap("p-mysql", {"uri": "mysql://x"}, ["mysql"]), None),
    (None, None),
])
def test_a_bound_redis_service_is_found(services, url):
    assert redis_url_from_vcap(services) == url


def test_redis_without_a_secret_is_refused_at_start():
    with pytest.raises(ConfigurationError, match="AUTOML_SECRET_KEY"):
        open_state({"REDIS_URL": "redis://127.0.0.1:1/0", "SECRET_KEY": None})
