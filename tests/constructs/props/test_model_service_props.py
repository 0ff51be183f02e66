"""Load balancer, artifact and secret rules of the model-service props (no CDK)."""

import pytest

from inferfleet.constructs.props.model_service import NeuronModelServiceProps, NeuronPool

CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/abc-123"
WEB_ACL = "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/edge/1234abcd-12ab"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:hf-token-AbCdEf"


def props(**changes) -> NeuronModelServiceProps:
    return NeuronModelServiceProps(pools=(NeuronPool("inf2.xlarge", 1),), **changes)


def messages(found) -> list[str]:
    return [f"{p.field}: {p.message}" for p in found]


def problems(**changes) -> list[str]:
    return messages(props(**changes).problems(region="us-east-1"))


def warnings(**changes) -> list[str]:
    return messages(props(**changes).warnings())


def test_an_internet_facing_load_balancer_needs_a_certificate():
    [problem] = problems(internet_facing=True)
    assert problem.startswith("internet_facing: an internet-facing load balancer without ")
    assert "set allow_plaintext_internet: true" in problem
    assert problems(internet_facing=True, certificate_arn=CERTIFICATE) == []


def test_plaintext_on_the_internet_is_accepted_only_when_asked_for_and_then_warned():
    assert problems(internet_facing=True, allow_plaintext_internet=True) == []
    [warning] = warnings(internet_facing=True, allow_plaintext_internet=True)
    assert warning.startswith("allow_plaintext_internet: the load balancer serves plain HTTP")
    # Meaningless where there is no plaintext on the internet.
    for changes in ({}, {"internet_facing": True, "certificate_arn": CERTIFICATE}):
        [problem] = problems(allow_plaintext_internet=True, **changes)
        assert problem.startswith("allow_plaintext_internet: applies to an internet-facing")


@pytest.mark.parametrize(
    "cidrs",
    [
        ("0.0.0.0/0",),
        ("0.0.0.0/1", "128.0.0.0/1"),
        ("128.0.0.0/1", "0.0.0.0/2", "64.0.0.0/2"),
        ("10.0.0.0/8", "0.0.0.0/1", "128.0.0.0/1"),
    ],
)
def test_blocks_that_together_cover_the_internet_count_as_open(cidrs):
    internal = props(allowed_cidrs=cidrs)
    assert internal.open_to_the_internet
    assert internal.ingress_cidrs == ("0.0.0.0/0",)
    [problem] = messages(internal.problems(region="us-east-1"))
    assert problem.startswith("allowed_cidrs: ") and "cover every IPv4 address" in problem
    public = dict(internet_facing=True, certificate_arn=CERTIFICATE, allowed_cidrs=cidrs)
    assert problems(**public) == []
    [warning] = warnings(**public)
    assert warning.startswith("allowed_cidrs: the load balancer is open to the whole internet")
    assert warnings(**public, web_acl_arn=WEB_ACL) == []


def test_blocks_that_leave_a_gap_are_not_open():
    assert not props(allowed_cidrs=("0.0.0.0/1", "128.0.0.0/2")).open_to_the_internet
    assert props(allowed_cidrs=("10.0.0.0/9", "10.128.0.0/9")).ingress_cidrs == ("10.0.0.0/8",)


def test_a_web_acl_is_a_regional_waf_arn_of_the_stacks_region():
    assert problems(web_acl_arn=WEB_ACL) == []
    [bad] = problems(web_acl_arn="arn:aws:wafv2:us-east-1:123456789012:global/webacl/x/1a")
    assert bad.startswith("web_acl_arn: ") and "regional AWS WAF web ACL" in bad
    [elsewhere] = problems(web_acl_arn=WEB_ACL.replace("us-east-1", "eu-west-1"))
    assert "the web ACL is in eu-west-1, but the load balancer is in us-east-1" in elsewhere


@pytest.mark.parametrize(
    ("given", "normalized"),
    [
        ("s3://models/llama-70b", "s3://models/llama-70b/"),
        ("s3://models/llama-70b/", "s3://models/llama-70b/"),
        ("s3://models", "s3://models/"),
    ],
)
def test_an_artifact_prefix_ends_in_a_slash(given, normalized):
    resolved = props(model_artifact=given).resolved()
    assert resolved.model_artifact == normalized
    assert resolved.model_artifact_location == ("models", normalized.removeprefix("s3://models/"))


def test_an_artifact_without_a_prefix_warns_that_it_grants_the_whole_bucket():
    [warning] = warnings(model_artifact="s3://models")
    assert warning.startswith("model_artifact: no prefix: the tasks may read every object")
    assert warnings(model_artifact="s3://models/llama/") == []
    [problem] = problems(model_artifact="s3:///llama/")
    assert problem.startswith("model_artifact: ")


def test_secrets_are_arns_of_the_region_and_never_also_in_environment():
    ssm = "arn:aws:ssm:us-east-1:123456789012:parameter/inferfleet/hf-token"
    assert problems(secrets={"HF_TOKEN": SECRET, "API_KEY": ssm}) == []
    assert problems(secrets={"HF_TOKEN": f"{SECRET}:token"}) == []
    sources = props(secrets={"A": f"{SECRET}:token", "B": ssm}).secret_sources
    assert (sources["A"].arn, sources["A"].json_key) == (SECRET, "token")
    assert (sources["B"].service, sources["B"].parameter_name) == ("ssm", "/inferfleet/hf-token")
    for secrets, expected in [
        ({"HF_TOKEN": "hf_abc123"}, "secrets.HF_TOKEN: 'hf_abc123' is neither"),
        ({"HF_TOKEN": SECRET.replace("-AbCdEf", "")}, "is not a complete secret ARN"),
        ({"HF_TOKEN": SECRET.replace("us-east-1", "eu-west-1")}, "the secret is in eu-west-1"),
        ({"1BAD": SECRET}, "secrets.1BAD: '1BAD' is not an environment variable name"),
        ({"INFERFLEET_TP_DEGREE": SECRET}, "environment: INFERFLEET_TP_DEGREE are set by"),
    ]:
        assert any(expected in p for p in problems(secrets=secrets)), secrets
    [clash] = problems(secrets={"HF_TOKEN": SECRET}, environment={"HF_TOKEN": "x"})
    assert clash.startswith("secrets: HF_TOKEN are also in environment")


def test_a_credential_in_environment_is_warned_about():
    [warning] = warnings(environment={"HF_TOKEN": "hf_abc", "HF_HOME": "/tmp"})
    assert warning.startswith("environment: HF_TOKEN look like credentials")
