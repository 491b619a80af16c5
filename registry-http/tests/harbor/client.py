"""A Harbor user's script, run with the `harborapi` client library from PyPI against this
registry: every call must succeed and read back what Harbor would answer.

Usage: client.py URL ADMIN_USER ADMIN_PASSWORD SCANNER_URL

The caller pushed `library/signed:v1` with a cosign signature (`sha256-<hex>.sig`) and runs a
scanner adapter at SCANNER_URL.
"""

import asyncio
import sys

from harborapi import HarborAsyncClient
from harborapi.models import (
    UserGroup,
    Access,
    Configurations,
    LdapConf,
    CVEAllowlist,
    CVEAllowlistItem,
    ScannerRegistrationReq,
    ScannerRegistrationSettings,
    Schedule,
    ScheduleObj,
    ImmutableRule,
    ImmutableSelector,
    Label,
    ProjectMetadata,
    RetentionPolicy,
    RetentionPolicyScope,
    RetentionRule,
    RetentionRuleTrigger,
    RetentionSelector,
    ProjectReq,
    QuotaUpdateReq,
    Registry,
    RegistryCredential,
    RegistryPing,
    RegistryUpdate,
    ReplicationFilter,
    ReplicationPolicy,
    ReplicationTrigger,
    ResourceList,
    RobotCreate,
    RobotPermission,
    UserCreationReq,
)


async def scanning(admin: HarborAsyncClient, scanner_url: str) -> None:
    """Scanners, a scan and its report, accessories, the allowlist, the scan of everything."""
    await admin.ping_scanner_adapter(ScannerRegistrationSettings(name="ping", url=scanner_url))
    await admin.create_scanner(ScannerRegistrationReq(name="pyscanner", url=scanner_url, description="fixture"))
    scanners = await admin.get_scanners()
    assert [s.name for s in scanners] == ["pyscanner"] and scanners[0].is_default, scanners
    uuid = scanners[0].uuid
    shown = await admin.get_scanner(uuid)
    assert shown.health == "healthy" and shown.adapter == "Fixture", shown
    metadata = await admin.get_scanner_metadata(uuid)
    assert metadata.scanner.name == "Fixture", metadata
    await admin.update_scanner(uuid, ScannerRegistrationReq(name="pyscanner", url=scanner_url, description="changed"))
    assert (await admin.get_scanner(uuid)).description == "changed"
    await admin.set_default_scanner(uuid)
    await admin.set_project_scanner("library", uuid)
    assert (await admin.get_project_scanner("library")).uuid == uuid
    assert [c.uuid for c in await admin.get_project_scanner_candidates("library")] == [uuid]

    await admin.scan_artifact("library", "signed", "v1")
    for _ in range(500):
        artifact = await admin.get_artifact("library", "signed", "v1", with_scan_overview=True)
        overviews = (artifact.scan_overview.root if artifact.scan_overview else None) or {}
        overview = overviews.get("application/vnd.security.vulnerability.report; version=1.1")
        status = overview.scan_status if overview else None
        if status == "Success":
            break
        await asyncio.sleep(0.02)
    assert status == "Success", artifact.scan_overview
    reports = await admin.get_artifact_vulnerability_reports("library", "signed", "v1")
    report = reports.first()
    assert report is not None and report.vulnerabilities[0].id == "CVE-2026-0001", reports
    assert artifact.accessories and artifact.accessories[0].type == "signature.cosign", artifact.accessories
    accessories = await admin.get_artifact_accessories("library", "signed", "v1")
    assert [a.type for a in accessories] == ["signature.cosign"], accessories

    await admin.update_cve_allowlist(CVEAllowlist(items=[CVEAllowlistItem(cve_id="CVE-2026-0001")]))
    assert [i.cve_id for i in (await admin.get_cve_allowlist()).items] == ["CVE-2026-0001"]
    await admin.update_scan_all_schedule(Schedule(schedule=ScheduleObj(type="Daily")))
    kind = (await admin.get_scan_all_schedule()).schedule.type
    assert getattr(kind, "value", kind) == "Daily", kind
    await admin.create_scan_all_schedule(Schedule(schedule=ScheduleObj(type="Manual")))
    for _ in range(500):
        metrics = await admin.get_scan_all_metrics()
        if metrics.total and not metrics.ongoing:
            break
        await asyncio.sleep(0.02)
    assert metrics.total and metrics.completed == metrics.total, metrics
    await admin.update_scan_all_schedule(Schedule(schedule=ScheduleObj(type="None")))
    await admin.delete_scanner(uuid)
    assert await admin.get_scanners() == []


async def registries(admin: HarborAsyncClient, url: str, user: str, password: str) -> None:
    """Registry endpoints: this registry registered as a remote of its own, through its token service."""
    assert await admin.get_registry_adapters() == ["docker-registry", "harbor"]
    providers = await admin.get_registry_providers()
    assert "harbor" in providers.root, providers
    await admin.check_registry_status(RegistryPing(type="harbor", url=url, credential_type="basic", access_key=user, access_secret=password))
    location = await admin.create_registry(
        Registry(name="pyremote", type="harbor", url=url, insecure=False,
                 credential=RegistryCredential(type="basic", access_key=user, access_secret=password))
    )
    registry_id = int(location.rsplit("/", 1)[-1])
    shown = await admin.get_registry(registry_id)
    assert shown.status == "healthy" and shown.credential.access_key == user, shown
    assert shown.credential.access_secret != password, "the secret is never shown"
    await admin.update_registry(registry_id, RegistryUpdate(description="ourselves"))
    assert [r.description for r in await admin.get_registries()] == ["ourselves"]
    info = await admin.get_registry_info(registry_id)
    assert info.type == "harbor" and info.supported_triggers, info
    await admin.delete_registry(registry_id)
    assert await admin.get_registries() == []


async def replication(admin: HarborAsyncClient, url: str, user: str, password: str) -> None:
    """A push-based policy copying library/signed through this registry's own endpoint, run once."""
    location = await admin.create_registry(
        Registry(name="pyself", type="harbor", url=url,
                 credential=RegistryCredential(type="basic", access_key=user, access_secret=password))
    )
    registry_id = int(location.rsplit("/", 1)[-1])
    await admin.create_project(ProjectReq(project_name="pymirror"))
    location = await admin.create_replication_policy(
        ReplicationPolicy(name="pycopy", dest_registry=Registry(id=registry_id), dest_namespace="pymirror",
                          dest_namespace_replace_count=-1, trigger=ReplicationTrigger(type="manual"), enabled=True,
                          filters=[ReplicationFilter(type="name", value="library/signed")],
                          speed=100000, copy_by_chunk=True, replicate_deletion=False)
    )
    policy_id = int(location.rsplit("/", 1)[-1])
    policy = await admin.get_replication_policy(policy_id)
    assert policy.dest_registry.name == "pyself" and policy.dest_namespace == "pymirror", policy
    assert policy.speed == 100000 and policy.copy_by_chunk and not policy.replicate_deletion, policy
    assert [p.name for p in await admin.get_replication_policies()] == ["pycopy"]
    execution_id = int((await admin.start_replication(policy_id)).rsplit("/", 1)[-1])
    for _ in range(500):
        execution = await admin.get_replication(execution_id)
        if execution.status != "InProgress":
            break
        await asyncio.sleep(0.02)
    assert execution.status == "Succeed" and execution.total == 1, execution
    tasks = await admin.get_replication_tasks(execution_id)
    assert [t.dst_resource for t in tasks] == ["pymirror/signed:v1"], tasks
    assert "copied" in await admin.get_replication_task_log(execution_id, tasks[0].id)
    assert [e.id for e in await admin.get_replications(policy_id=policy_id)] == [execution_id]
    copied = await admin.get_artifact("pymirror", "signed", "v1")
    original = await admin.get_artifact("library", "signed", "v1")
    assert copied.digest == original.digest and copied.accessories, copied
    await admin.delete_replication_policy(policy_id)
    await admin.delete_registry(registry_id)
    await admin.delete_repository("pymirror", "signed")
    await admin.delete_project("pymirror")


async def ldap(admin: HarborAsyncClient, ldap_url: str, root_dn: str, root_password: str, base: str) -> None:
    """The directory tried, chosen, searched and imported from; then back to this registry's passwords."""
    settings = dict(ldap_url=ldap_url, ldap_search_dn=root_dn, ldap_base_dn=f"ou=people,{base}",
                    ldap_filter="(objectClass=inetOrgPerson)", ldap_uid="uid", ldap_scope=2)
    refused = await admin.ping_ldap(LdapConf(**settings, ldap_search_password="wrong"))
    assert refused.success is False and "refuses the search DN" in (refused.message or ""), refused
    assert (await admin.ping_ldap(LdapConf(**settings, ldap_search_password=root_password))).success
    await admin.update_config(Configurations(auth_mode="ldap_auth", ldap_search_password=root_password, **settings))
    assert (await admin.get_system_info()).auth_mode == "ldap_auth"
    found = await admin.search_ldap_users("ali")
    assert [(u.username, u.email) for u in found] == [("alice", "alice@example.org")], found
    await admin.import_ldap_users(["bob"])
    assert (await admin.get_user_by_username("bob")).email == "bob@example.org"
    # Groups: found in the directory, made here by DN, a member of a project as one.
    await admin.update_config(Configurations(ldap_group_base_dn=f"ou=groups,{base}",
                                             ldap_group_search_filter="(objectClass=groupOfNames)"))
    developers = f"cn=developers,ou=groups,{base}"
    groups = await admin.search_ldap_groups(group_name="dev")
    assert [(g.group_name, g.ldap_group_dn) for g in groups] == [("developers", developers)], groups
    await admin.create_usergroup(UserGroup(group_type=1, ldap_group_dn=developers))
    made = [g for g in await admin.get_usergroups() if g.ldap_group_dn == developers]
    assert made and made[0].group_name == "developers", made
    await admin.create_project(ProjectReq(project_name="pygroups"))
    await admin.add_project_member_group("pygroups", made[0].id, 2)
    members = await admin.get_project_members("pygroups")
    assert any(m.entity_type == "g" and m.entity_name == "developers" for m in members), members
    assert [g.group_name for g in await admin.search_usergroups("dev")] == ["developers"]
    await admin.delete_project("pygroups")
    await admin.delete_usergroup(made[0].id)
    await admin.update_config(Configurations(auth_mode="db_auth"))
    assert (await admin.get_system_info()).auth_mode == "db_auth"


async def artifact_kinds(admin: HarborAsyncClient) -> None:
    """An image's build history and a chart's addition links, as harborapi reads them."""
    image = await admin.get_artifact("library", "built", "v1")
    assert image.type == "IMAGE", image
    assert "build_history" in image.addition_links.root, image.addition_links
    assert image.extra_attrs.root["architecture"] == "arm64", image.extra_attrs
    history = await admin.get_artifact_build_history("library", "built", "v1")
    assert [h.created_by for h in history] == ["COPY app /app", 'CMD ["/app"]'], history
    chart = await admin.get_artifact("library", "demo", "1.0.0")
    assert chart.type == "CHART", chart
    assert sorted(chart.addition_links.root) == ["dependencies", "readme.md", "values.yaml"], chart.addition_links
    assert chart.extra_attrs.root["name"] == "demo", chart.extra_attrs
    charts = await admin.get_artifacts("library", "demo", query="type=CHART")
    assert [a.digest for a in charts] == [chart.digest], charts
    assert await admin.get_artifacts("library", "demo", query="type=IMAGE") == []


async def main(url: str, user: str, password: str, scanner_url: str, ldap_url: str, root_dn: str, root_password: str,
               base: str) -> None:
    admin = HarborAsyncClient(url=f"{url}/api/v2.0", username=user, secret=password)

    assert await admin.ping() == "Pong"
    health = await admin.health_check()
    assert health.status == "healthy", health
    info = await admin.get_system_info()
    assert info.auth_mode == "db_auth", info
    assert info.harbor_version and info.harbor_version.startswith("v2."), info
    me = await admin.get_current_user()
    assert me.username == user and me.sysadmin_flag, me

    # Projects.
    await admin.create_project(ProjectReq(project_name="pyproj", metadata=ProjectMetadata(public="false")))
    assert await admin.project_exists("pyproj")
    assert not await admin.project_exists("no-such-project")
    project = await admin.get_project("pyproj")
    assert project.name == "pyproj" and project.project_id, project
    assert project.metadata.public == "false", project
    same = await admin.get_project(project.project_id)
    assert same.name == "pyproj"
    names = [p.name for p in await admin.get_projects()]
    assert "pyproj" in names, names
    await admin.update_project("pyproj", ProjectReq(metadata=ProjectMetadata(public="true")))
    assert (await admin.get_project("pyproj")).metadata.public == "true"
    summary = await admin.get_project_summary("pyproj")
    assert summary.repo_count == 0 and summary.project_admin_count == 1, summary
    deletable = await admin.get_project_deletable("pyproj")
    assert deletable.deletable, deletable

    # Users and passwords.
    await admin.create_user(
        UserCreationReq(username="pyuser", email="py@example.com", realname="Py User", password="Password123")
    )
    created = await admin.get_user_by_username("pyuser")
    assert created.email == "py@example.com" and created.user_id, created
    found = await admin.search_users_by_username("pyus")
    assert [u.username for u in found] == ["pyuser"], found
    await admin.set_user_password(created.user_id, new_password="NewPassword123")
    pyuser = HarborAsyncClient(url=f"{url}/api/v2.0", username="pyuser", secret="NewPassword123")
    assert (await pyuser.get_current_user()).username == "pyuser"
    await pyuser.set_user_password(created.user_id, new_password="Newer123456", old_password="NewPassword123")
    users = [u.username for u in await admin.get_users()]
    assert "pyuser" in users, users

    # Members.
    await admin.add_project_member_user("pyproj", "pyuser", 2)
    members = await admin.get_project_members("pyproj")
    developer = [m for m in members if m.entity_name == "pyuser"]
    assert developer and developer[0].role_id == 2 and developer[0].role_name == "developer", members
    await admin.update_project_member_role("pyproj", developer[0].id, 4)
    member = await admin.get_project_member("pyproj", developer[0].id)
    assert member.role_id == 4, member

    # Robots (v2).
    permission = RobotPermission(
        kind="project",
        namespace="pyproj",
        access=[Access(resource="repository", action="pull"), Access(resource="repository", action="push")],
    )
    robot = await admin.create_robot(
        RobotCreate(name="pybot", description="from python", level="project", duration=-1, permissions=[permission])
    )
    assert robot.name == "robot$pyproj+pybot" and robot.secret, robot
    fetched = await admin.get_robot(robot.id)
    assert fetched.description == "from python" and fetched.permissions[0].namespace == "pyproj", fetched
    listed = [r.name for r in await admin.get_robots()]
    assert "robot$pyproj+pybot" in listed, listed
    refreshed = await admin.refresh_robot_secret(robot.id, "Chosen-Secret-123")
    assert refreshed.secret == "Chosen-Secret-123", refreshed

    # Quotas: a limit at creation, read back, changed.
    await admin.create_project(ProjectReq(project_name="pyquota", storage_limit=1048576))
    quota_project = await admin.get_project("pyquota")
    quotas = await admin.get_quotas(reference="project", reference_id=str(quota_project.project_id))
    assert len(quotas) == 1 and quotas[0].hard.root["storage"] == 1048576, quotas
    assert quotas[0].ref.root["name"] == "pyquota", quotas
    await admin.update_quota(quotas[0].id, QuotaUpdateReq(hard=ResourceList({"storage": 2097152})))
    quota = await admin.get_quota(quotas[0].id)
    assert quota.hard.root["storage"] == 2097152 and quota.used.root["storage"] == 0, quota
    summary = await admin.get_project_summary("pyquota")
    assert summary.quota.hard.root["storage"] == 2097152, summary

    # Immutable tag rules: created, listed, disabled, deleted.
    rule = ImmutableRule(
        tag_selectors=[ImmutableSelector(kind="doublestar", decoration="matches", pattern="release-*")],
        scope_selectors={"repository": [ImmutableSelector(kind="doublestar", decoration="repoMatches", pattern="**")]},
    )
    await admin.create_project_immutable_tag_rule("pyquota", rule)
    rules = await admin.get_project_immutable_tag_rules("pyquota")
    assert len(rules) == 1 and rules[0].tag_selectors[0].pattern == "release-*" and not rules[0].disabled, rules
    await admin.enable_project_immutable_tagrule("pyquota", rules[0].id, False)
    assert (await admin.get_project_immutable_tag_rules("pyquota"))[0].disabled
    await admin.delete_project_immutable_tag_rule("pyquota", rules[0].id)
    assert await admin.get_project_immutable_tag_rules("pyquota") == []

    # Labels: global and of a project.
    await admin.create_label(Label(name="pyglobal", color="#336699", scope="g"))
    await admin.create_label(Label(name="pylocal", scope="p", project_id=quota_project.project_id))
    globals_ = [l.name for l in await admin.get_labels(scope="g")]
    assert "pyglobal" in globals_, globals_
    local = await admin.get_labels(scope="p", project_id=quota_project.project_id)
    assert [l.name for l in local] == ["pylocal"] and local[0].scope == "p", local
    await admin.update_label(local[0].id, Label(name="pylocal", description="changed"))
    assert (await admin.get_label(local[0].id)).description == "changed"
    await admin.delete_label(local[0].id)

    # Tag retention: a policy, a dry run, its executions and tasks.
    policy = RetentionPolicy(
        algorithm="or",
        rules=[
            RetentionRule(
                action="retain",
                template="latestPushedK",
                params={"latestPushedK": 3},
                tag_selectors=[RetentionSelector(kind="doublestar", decoration="matches", pattern="**")],
                scope_selectors={"repository": [RetentionSelector(kind="doublestar", decoration="repoMatches", pattern="**")]},
            )
        ],
        trigger=RetentionRuleTrigger(kind="Schedule", settings={"cron": "0 0 0 * * *"}),
        scope=RetentionPolicyScope(level="project", ref=quota_project.project_id),
    )
    await admin.create_retention_policy(policy)
    retention_id = await admin.get_project_retention_id("pyquota")
    assert retention_id, retention_id
    fetched = await admin.get_retention_policy(retention_id)
    assert fetched.rules[0].template == "latestPushedK" and fetched.scope.ref == quota_project.project_id, fetched
    metadata = await admin.get_retention_metadata()
    assert len(metadata.templates) == 5, metadata
    await admin.start_retention_execution(retention_id, dry_run=True)
    for _ in range(200):
        executions = await admin.get_retention_executions(retention_id)
        if executions and executions[0].status == "Success":
            break
        await asyncio.sleep(0.05)
    assert executions[0].dry_run and executions[0].status == "Success", executions
    assert await admin.get_retention_tasks(retention_id, executions[0].id) == []
    await admin.delete_retention_policy(retention_id)
    await admin.delete_project("pyquota")

    # Statistics and garbage collection history.
    statistics = await admin.get_statistics()
    assert statistics.total_project_count >= 2, statistics
    await admin.get_gc_jobs()

    await scanning(admin, scanner_url)
    await artifact_kinds(admin)
    await registries(admin, url, user, password)
    await replication(admin, url, user, password)
    await ldap(admin, ldap_url, root_dn, root_password, base)

    # Clean up.
    await admin.delete_robot(robot.id)
    await admin.remove_project_member("pyproj", developer[0].id)
    await admin.delete_user(created.user_id)
    await admin.delete_project("pyproj")
    assert not await admin.project_exists("pyproj")
    print("harborapi: every call answered as Harbor would")


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:9]))
