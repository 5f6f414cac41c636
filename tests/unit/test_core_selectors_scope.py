from __future__ import annotations

import pytest

from chalicelib.core.errors import InvalidScope, InvalidSelector
from chalicelib.core.jobs import BackupJob, InvalidJob
from chalicelib.core.resources import Resource
from chalicelib.core.scope import BackupScope
from chalicelib.core.selectors import parse_label_selector

CM = Resource("", "v1", "ConfigMap", "configmaps", True, frozenset({"list", "get", "create"}))
DEPLOY = Resource("apps", "v1", "Deployment", "deployments", True, frozenset({"list", "get"}))
NS = Resource("", "v1", "Namespace", "namespaces", False, frozenset({"list"}))
EVENTS = Resource("", "v1", "Event", "events", True, frozenset({"list"}))
REVIEW = Resource("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", False,
                  frozenset({"create"}))


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "db"}, False),
        ("app!=web", {}, True),
        ("app!=web", {"app": "web"}, False),
        ("env in (prod, staging)", {"env": "staging"}, True),
        ("env notin (prod)", {"env": "prod"}, False),
        ("env notin (prod)", {}, True),
        ("tier", {"tier": "x"}, True),
        ("!tier", {"tier": "x"}, False),
        ("app=web,env in (a,b),!legacy", {"app": "web", "env": "b"}, True),
        ("", {"anything": "x"}, True),
    ],
)
def test_label_selector_semantics(selector, labels, expected):
    assert parse_label_selector(selector).matches(labels) is expected


def test_invalid_selector_names_the_term():
    with pytest.raises(InvalidSelector, match="a b c"):
        parse_label_selector("app=web,a b c")


def test_selector_round_trips_to_string():
    sel = parse_label_selector("app=web,env in (b,a),!x")
    assert parse_label_selector(str(sel)) == sel


def test_namespace_globs():
    scope = BackupScope(include_namespaces=("shop*", "web"), exclude_namespaces=("shop-tmp",))
    assert scope.namespace_selected("shop-data")
    assert scope.namespace_selected("web")
    assert not scope.namespace_selected("shop-tmp")
    assert not scope.namespace_selected("kube-system")


def test_resource_selection_by_plural_group_or_kind():
    scope = BackupScope(include_resources=("deployments.apps", "ConfigMap"))
    assert scope.resource_selected(DEPLOY) and scope.resource_selected(CM)
    assert scope.resource_selected(NS), "namespaces stay in so a restore has them"
    assert not BackupScope(exclude_resources=("configmaps",)).resource_selected(CM)
    assert not BackupScope().resource_selected(EVENTS)
    assert not BackupScope().resource_selected(REVIEW), "not listable"


def test_cluster_scoped_default_depends_on_namespace_filter():
    assert BackupScope().effective_cluster_scoped == "on"
    assert BackupScope(include_namespaces=("shop",)).effective_cluster_scoped == "auto"
    with pytest.raises(InvalidScope):
        BackupScope(cluster_scoped="sometimes")  # type: ignore[arg-type]


def test_exclusion_label_is_always_sent_and_checked():
    scope = BackupScope(label_selector="app=web")
    assert scope.server_selector() == "app=web,lifeboat.io/exclude!=true,!lifeboat.io/backup-id"
    assert not scope.object_selected({"metadata": {"labels": {"app": "web", "lifeboat.io/exclude": "true"}}})
    assert scope.object_selected({"metadata": {"labels": {"app": "web"}}})
    # Lifeboat's own VolumeSnapshots (and contents) are a backup's volume records, never backed up as objects.
    assert not scope.object_selected({"metadata": {"labels": {"app": "web", "lifeboat.io/backup-id": "b-1"}}})
    assert not BackupScope().object_selected({"metadata": {"labels": {"lifeboat.io/backup-id": "b-1"}}})


def test_scope_from_dict_rejects_unknown_fields():
    with pytest.raises(InvalidScope, match="namespacez"):
        BackupScope.from_dict({"namespacez": ["x"]})


def test_job_validation_errors_are_specific():
    good = {"job_id": "j1", "cluster": {"name": "prod", "auth": {"type": "eks", "cluster_name": "prod"}}}
    assert BackupJob.from_dict(good).cluster.name == "prod"
    with pytest.raises(InvalidJob, match="job_id"):
        BackupJob.from_dict({**good, "job_id": ""})
    with pytest.raises(InvalidJob, match="auth.type"):
        BackupJob.from_dict({**good, "cluster": {"name": "prod", "auth": {"type": "magic"}}})
    with pytest.raises(InvalidJob, match="invalid scope"):
        BackupJob.from_dict({**good, "scope": {"label_selector": "a b c"}})
