"""The current org: the header's switcher, the org page (quotas and their usage) and
the members page (invite, change role, remove). Every change goes through OrgService,
which the API uses too, so the dashboard allows exactly what the API allows."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from taskflowd.auth.ratelimit import RateLimiterUnavailable
from taskflowd.dashboard.acting import ALL_ORGS, ORG_COOKIE, acting, actor
from taskflowd.dashboard.context import PREFIX, dashboard, redirect, render, set_cookie, viewer
from taskflowd.dashboard.forms import Form
from taskflowd.domain.errors import Conflict, Forbidden, NotFound, ValidationFailed
from taskflowd.domain.orgs import OrgRole
from taskflowd.services.orgs import OrgView

ORG_COOKIE_AGE_S = 365 * 24 * 3600
MAX_MEMBERS_SHOWN = 200
QUOTA_LABELS = {
    "max_tasks": "Tasks",
    "max_workflows": "Workflows",
    "max_running_jobs": "Running jobs",
    "api_limit_per_min": "API requests per minute",
}
ROLE_OPTIONS = [(r.value, r.value.capitalize()) for r in OrgRole]


async def _text(request: web.Request, name: str, limit: int = 320) -> str:
    value = (await request.post()).get(name, "")
    return value[:limit].strip() if isinstance(value, str) else ""


def _role(value: str) -> OrgRole | None:
    try:
        return OrgRole(value)
    except ValueError:
        return None


def _current(request: web.Request) -> OrgView:
    """The current org, or 404 for a site admin looking at every org (choose one first)."""
    current = acting(request).current
    if current is None:
        raise web.HTTPNotFound(reason="Choose an organization in the switcher at the top first.")
    return current


async def switch_org(request: web.Request) -> web.Response:
    """Make the chosen org current (one of the viewer's; a site admin may also choose
    every org at once), then go back to where the switcher was used."""
    choice = await _text(request, "org", 64)
    back = await _text(request, "next", 500)
    here = back if back.startswith(f"{PREFIX}/") and "//" not in back else f"{PREFIX}/"
    # A record's page belongs to the org it was opened in: land on its section instead.
    here = "/".join(here.split("?")[0].split("/")[:3])
    offered = {v.org.id: v for v in acting(request).orgs}
    site_admin = actor(request).is_site_admin
    if choice not in offered and not (site_admin and choice == ALL_ORGS):
        return redirect(request, here, "That organization is not one of yours.", error=True)
    name = "every organization" if choice == ALL_ORGS else f"“{offered[choice].org.name}”"
    response = redirect(request, here, f"Now working in {name}.")
    set_cookie(request, response, ORG_COOKIE, choice, ORG_COOKIE_AGE_S)
    return response


async def _usage(request: web.Request, view: OrgView) -> dict[str, int | None]:
    """What each quota counts now (None: not measured here)."""
    ctx, org_id = dashboard(request), view.org.id
    limit = view.quotas.api_limit_per_min or 0
    requests: int | None = None
    if limit:
        try:
            left = (await ctx.rate_limiter.hit(f"org:{org_id}", limit, cost=0)).remaining
            requests = max(0, limit - left)
        except RateLimiterUnavailable:
            requests = None
    return {
        "max_tasks": await ctx.orgs.store.count_tasks(org_id),
        "max_workflows": None,
        "max_running_jobs": await ctx.orgs.store.count_running(org_id),
        "api_limit_per_min": requests,
    }


async def _org_page(request: web.Request, form: Form | None = None) -> web.Response:
    view = _current(request)
    quotas = [
        (name, label, getattr(view.quotas, name), getattr(view.org.quotas, name))
        for name, label in QUOTA_LABELS.items()
    ]
    editable = actor(request).is_site_admin
    if form is None:
        form = Form({n: "" if o is None else str(o) for n, _, _, o in quotas})
    context: dict[str, Any] = {
        "org": view.org,
        "role": view.role,
        "quotas": quotas,
        "usage": await _usage(request, view),
        "quota_editable": editable,
        "form": form,
        "quota_labels": QUOTA_LABELS,
    }
    return render(request, "org.html", context, status=422 if form.errors else 200, section="org")


async def org_page(request: web.Request) -> web.Response:
    return await _org_page(request)


async def update_quotas(request: web.Request) -> web.Response:
    """Site admins only (the service refuses anyone else): blank resets to the default."""
    view = _current(request)
    form = Form({name: await _text(request, name, 16) for name in QUOTA_LABELS})
    values: dict[str, int | None] = {}
    for name, raw in form.values.items():
        if not raw:
            values[name] = None
        elif raw.isdigit():
            values[name] = int(raw)
        else:
            form.errors[name] = "must be a whole number (0: unlimited), or blank for the default"
    if form.errors:
        return await _org_page(request, form)
    try:
        await dashboard(request).orgs.update(viewer(request), view.org.id, None, values)
    except Forbidden as exc:
        return redirect(request, f"{PREFIX}/org", str(exc).capitalize() + ".", error=True)
    except ValidationFailed as exc:
        for error in exc.errors:
            form.errors[error.field.removeprefix("quotas.")] = error.message
        return await _org_page(request, form)
    return redirect(request, f"{PREFIX}/org", "Quotas saved.")


async def members_page(request: web.Request) -> web.Response:
    view = _current(request)
    ctx = dashboard(request)
    page = await ctx.orgs.members(viewer(request), view.org.id, MAX_MEMBERS_SHOWN, None)
    return render(
        request,
        "members.html",
        {
            "org": view.org,
            "members": page.items,
            "more": page.next_cursor is not None,
            "role_options": ROLE_OPTIONS,
            "me": viewer(request).id,
        },
        section="org",
    )


async def invite_member(request: web.Request) -> web.Response:
    view = _current(request)
    here = f"{PREFIX}/org/members"
    email = await _text(request, "email")
    role = _role(await _text(request, "role", 16))
    if not email or role is None:
        return redirect(request, here, "Give an email address and a role.", error=True)
    try:
        member = await dashboard(request).orgs.invite(viewer(request), view.org.id, email, role)
    except ValidationFailed as exc:
        problems = "; ".join(e.message for e in exc.errors)
        return redirect(request, here, f"Not invited: {problems}.", error=True)
    except (Conflict, Forbidden) as exc:
        return redirect(request, here, f"Not invited: {exc}.", error=True)
    return redirect(request, here, f"{member.email} is now a {member.role.value} of the org.")


async def member_action(request: web.Request) -> web.Response:
    """Change a member's role or remove the member."""
    view = _current(request)
    here = f"{PREFIX}/org/members"
    ctx, user = dashboard(request), viewer(request)
    user_id, action = request.match_info["id"], request.match_info["action"]
    try:
        if action == "role":
            role = _role(await _text(request, "role", 16))
            if role is None:
                return redirect(request, here, "Choose one of the listed roles.", error=True)
            member = await ctx.orgs.set_role(user, view.org.id, user_id, role)
            return redirect(request, here, f"{member.email} is now a {role.value}.")
        await ctx.orgs.remove(user, view.org.id, user_id)
    except NotFound:
        return redirect(request, here, "That member is no longer in the org.", error=True)
    except (Conflict, Forbidden) as exc:
        return redirect(request, here, str(exc).capitalize() + ".", error=True)
    if user_id == user.id:
        return redirect(request, f"{PREFIX}/", f"You left “{view.org.name}”.")
    return redirect(request, here, "Removed the member from the org.")
