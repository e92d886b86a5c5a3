"""The console as a WSGI application: its routes, each a thin view over `eventfwd.ops`."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any

import redis
from jinja2 import Environment, PackageLoader, pass_context, select_autoescape
from jinja2.runtime import Context

from eventfwd.core.connection import connect, redact_url
from eventfwd.core.ledger import Ledger
from eventfwd.core.records import DEAD_REASONS, Records
from eventfwd.core.settings import Settings
from eventfwd.ops import lookup, platforms
from eventfwd.ops.audit import record_action
from eventfwd.ops.bulk import Selection, replay_action
from eventfwd.ops.deadpage import dead_page
from eventfwd.ops.jobs import Job, Jobs
from eventfwd.ops.overview import read_overview
from eventfwd.ops.timefmt import ago, iso, span
from eventfwd.web.auth import CSRF_COOKIE, CSRF_FIELD, SESSION_COOKIE, WHO_COOKIE, Guard
from eventfwd.web.charts import line_chart
from eventfwd.web.filters import FIELDS, read_filter
from eventfwd.web.http import Request, Response, Router, redirect, text

log = logging.getLogger(__name__)

PAGE_SIZE = 50
SAMPLE_SIZE = 10
STATS_SCAN_LIMIT = 200_000
WORKERS_EVERY_S = 30.0
STATIC = {"console.css": "text/css; charset=utf-8"}
NOTES = {
    "replayed": "Replayed {n} event(s): they go out at the platform's rate.",
    "not-replayed": "Nothing replayed: it is not a dead letter (any more).",
    "paused": "Paused {platform}: its events are kept and not sent.",
    "resumed": "Resumed {platform}: its events drain at its rate.",
    "already": "Nothing changed: {platform} was already in that state.",
    "reset": "Closed the circuit of {platform}: parked events drain at its rate.",
}


class Console:
    """The WSGI application (`create_app`): call it with (environ, start_response)."""

    def __init__(self, settings: Settings, *, client: redis.Redis | None = None) -> None:
        self.settings = settings
        self.client = client or connect(
            settings.redis_url, socket_connect_timeout=2, socket_timeout=10
        )
        self.ledger = Ledger(self.client, settings)
        self.records = Records(self.client, self.ledger.keys)
        self.guard = Guard(settings.web_secret)
        self.read_only = settings.web_read_only
        self.jobs = Jobs()
        self._workers: list[str] | None = None
        self._workers_at = 0.0
        self._workers_lock = threading.Lock()
        self.env = Environment(
            loader=PackageLoader("eventfwd.web", "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(iso=iso, ago=_ago, span=span, json=_pretty_json)
        self.router = Router()
        for method, path, view in (
            ("GET", "/", self.overview),
            ("GET", "/dead", self.dead_list),
            ("GET", "/dead/stats", self.dead_stats),
            ("GET", "/event", self.event),
            ("POST", "/event/replay", self.event_replay),
            ("GET", "/bulk/<kind>", self.bulk_confirm),
            ("POST", "/bulk/<kind>", self.bulk_start),
            ("GET", "/jobs/<job_id>", self.job),
            ("POST", "/platform/<action>", self.platform_action),
            ("GET", "/login", self.login_form),
            ("POST", "/login", self.login),
            ("POST", "/logout", self.logout),
            ("GET", "/static/<name>", self.static),
        ):
            self.router.add(method, path, view)

    # -- WSGI ----------------------------------------------------------------------------------

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        req = Request(environ)
        try:
            resp = self.dispatch(req)
        except redis.RedisError as exc:
            log.warning("console: Redis failed: %s", exc)
            url = redact_url(self.settings.redis_url)
            resp = text(f"Redis at {url} failed: {type(exc).__name__}: {exc}", 503)
        return resp(start_response)

    def dispatch(self, req: Request) -> Response:
        handler, params, exists = self.router.match(req.method, req.path)
        if handler is None:
            return text("method not allowed" if exists else "not found", 405 if exists else 404)
        public = req.path.startswith("/static/") or req.path == "/login"
        if not public and not self.guard.authorized(req):
            return self.render(req, "login.html", status=401, error=None)
        if req.method == "POST":
            if not self.guard.csrf_ok(req):
                return text("refused: missing or wrong CSRF token (reload the page)", 403)
            if self.read_only and req.path not in ("/login", "/logout"):
                return text("refused: the console is read-only (EVENTFWD_WEB_READ_ONLY)", 403)
        return handler(req, **params)

    def render(self, req: Request, template: str, *, status: int = 200, **ctx: Any) -> Response:
        token, new = self.guard.csrf_token(req)
        html = self.env.get_template(template).render(
            req=req,
            url=req.url,
            csrf_field=CSRF_FIELD,
            csrf=token,
            read_only=self.read_only,
            secret_required=self.guard.required,
            signed_in=self.guard.required and self.guard.authorized(req),
            who=self.guard.who(req),
            note=self._note(req),
            reasons=DEAD_REASONS,
            clock=_Clock(self.records),
            **ctx,
        )
        resp = Response(html, status=status)
        if new:
            resp.set_cookie(CSRF_COOKIE, token, path=req.root or "/")
        return resp

    @staticmethod
    def _note(req: Request) -> str | None:
        template = NOTES.get(req.query.get("note", ""))
        if template is None:
            return None
        return template.format(n=req.query.get("n", "?"), platform=req.query.get("platform", "?"))

    # -- pages ---------------------------------------------------------------------------------

    def overview(self, req: Request) -> Response:
        ov = read_overview(self.client, self.settings)
        charts = [line_chart(ov.total, title="all platforms, events per minute (2 h)")]
        for pid, series in ov.per_platform.items():
            charts.append(line_chart(series, title=f"{pid}, events per minute (2 h)"))
        rows = []
        for p in ov.snap.platforms:
            rows.append(
                {
                    "p": p,
                    "oldest_s": ov.snap.oldest_pending_age_s(p),
                    "cap": p.cap,
                    "ready": p.ready,
                    "scheduled": p.due + p.waiting,
                    "paused": ov.pauses.get(p.platform_id),
                    "hour": ov.last_hour.get(p.platform_id, {}),
                }
            )
        return self.render(
            req,
            "overview.html",
            ov=ov,
            rows=rows,
            charts=charts,
            workers=self.workers_seen(),
            redis_url=redact_url(self.settings.redis_url),
        )

    def dead_list(self, req: Request) -> Response:
        form = read_filter(req.query)
        started = time.perf_counter()
        page = None
        if form.error is None:
            page = dead_page(self.records, form.flt, cursor=req.query.get("after"), size=PAGE_SIZE)
        return self.render(
            req,
            "dead.html",
            form=form,
            page=page,
            total=self.records.dead_count(),
            platforms=self.records.platforms(),
            took_ms=round((time.perf_counter() - started) * 1000),
        )

    def dead_stats(self, req: Request) -> Response:
        form = read_filter(req.query)
        summary = None
        if form.error is None:
            summary = self.records.dead_summary(form.flt, limit=STATS_SCAN_LIMIT, by_message=True)
        return self.render(
            req,
            "dead_stats.html",
            form=form,
            summary=summary,
            scan_limit=STATS_SCAN_LIMIT,
            platforms=self.records.platforms(),
        )

    def event(self, req: Request) -> Response:
        event_id = req.query.get("id", "").strip()
        if not event_id:
            return redirect(req.url("/"))
        found = lookup.find(self.client, self.ledger.keys, event_id)
        return self.render(
            req, "event.html", found=found, status=200 if found.state != "unknown" else 404
        )

    def event_replay(self, req: Request) -> Response:
        event_id = req.form.get("id", "")
        replayed, _ = replay_action(self.ledger)([event_id])
        record_action(
            "dead.replay",
            by=self.guard.who(req),
            count=replayed,
            what=f"id {event_id}",
            source="web",
        )
        note = "replayed" if replayed else "not-replayed"
        return redirect(req.url("/event", id=event_id, note=note, n=replayed))

    # -- bulk ----------------------------------------------------------------------------------

    def _selection(self, source: dict[str, str]) -> tuple[Selection, str, str | None]:
        """The selection of a bulk form: one id, or the filter (never everything by accident)."""
        if source.get("id"):
            return Selection(ids=(source["id"],)), f"id {source['id']}", None
        form = read_filter(source)
        if form.error:
            return Selection(), "", form.error
        return Selection(flt=form.flt), form.describe(), None

    def _bulk(self, kind: str, source: dict[str, str]) -> tuple[Selection, str] | Response:
        """The selection of a bulk request, or the answer refusing it."""
        if kind not in ("replay", "purge"):
            return text("not found", 404)
        sel, what, error = self._selection(source)
        if error:
            return text(f"bad filter: {error}", 400)
        return sel, what

    def bulk_confirm(self, req: Request, kind: str) -> Response:
        asked = self._bulk(kind, req.query)
        if isinstance(asked, Response):
            return asked
        sel, what = asked
        if sel.flt is not None:
            total = sel.count(self.records, until_ms=self.records.now_ms())
            sample = dead_page(self.records, sel.flt, size=SAMPLE_SIZE).rows
        else:
            sample = [e for e in self.records.envelopes(list(sel.ids)) if e.state == "dead"]
            total = len(sample)
        hidden = {k: v for k, v in req.query.items() if k in (*FIELDS, "id") and v}
        return self.render(
            req,
            "confirm.html",
            kind=kind,
            what=what,
            total=total,
            sample=sample,
            hidden=hidden,
            export_dir=self.settings.dead_letter_export_dir,
            rate=self.settings.rate_limit_per_s,
        )

    def bulk_start(self, req: Request, kind: str) -> Response:
        asked = self._bulk(kind, req.form)
        if isinstance(asked, Response):
            return asked
        sel, what = asked
        started_ms = self.records.now_ms()
        total = sel.count(self.records, until_ms=started_ms)
        who = self.guard.who(req)
        log.info("console: %s starts %s of %d dead letter(s) (%s)", who, kind, total, what)

        def ended(job: Job) -> None:
            record_action(
                f"dead.{kind}",
                by=who,
                count=job.result.done,
                what=f"{what}; {job.state}"
                + (f"; exported to {job.export_path}" if job.export_path else ""),
                source="web",
            )

        job = self.jobs.start(
            kind,
            self.ledger,
            sel,
            by=who,
            what=what,
            total=total,
            started_ms=started_ms,
            rate_per_s=self.settings.rate_limit_per_s,
            export_dir=self.settings.dead_letter_export_dir,
            on_end=ended,
        )
        return redirect(req.url(f"/jobs/{job.id}"))

    def job(self, req: Request, job_id: str) -> Response:
        job = self.jobs.get(job_id)
        if job is None:
            return text("no such job (jobs live in the console process that ran them)", 404)
        return self.render(req, "job.html", job=job)

    # -- platforms -----------------------------------------------------------------------------

    def platform_action(self, req: Request, action: str) -> Response:
        pid = req.form.get("platform", "")
        if pid not in self.records.platforms():
            return text(f"unknown platform {pid!r}", 404)
        who = self.guard.who(req)
        if action == "pause":
            reason = req.form.get("reason", "")
            changed = platforms.pause(self.ledger, pid, by=who, source="web", reason=reason)
            note = "paused" if changed else "already"
        elif action == "resume":
            changed = platforms.resume(self.ledger, pid, by=who, source="web")
            note = "resumed" if changed else "already"
        elif action == "reset":
            changed = platforms.reset_circuit(self.ledger, pid, by=who, source="web")
            note = "reset" if changed else "already"
        else:
            return text("not found", 404)
        return redirect(req.url("/", note=note, platform=pid))

    # -- login, static -------------------------------------------------------------------------

    def login_form(self, req: Request) -> Response:
        return self.render(req, "login.html", error=None)

    def login(self, req: Request) -> Response:
        if not self.guard.required:
            return redirect(req.url("/"))
        if not self.guard.secret_matches(req.form.get("secret", "")):
            log.warning("console: wrong secret from %s", req.environ.get("REMOTE_ADDR"))
            return self.render(req, "login.html", status=401, error="That is not the secret.")
        resp = redirect(req.url("/"))
        resp.set_cookie(SESSION_COOKIE, self.guard.session_value(), path=req.root or "/")
        name = "".join(c for c in req.form.get("name", "") if c.isalnum() or c in "._-@")[:64]
        if name:
            resp.set_cookie(WHO_COOKIE, self.guard.signed_name(name), path=req.root or "/")
        return resp

    def logout(self, req: Request) -> Response:
        resp = redirect(req.url("/login"))
        resp.set_cookie(SESSION_COOKIE, "", path=req.root or "/", max_age=0)
        return resp

    def static(self, req: Request, name: str) -> Response:
        if name not in STATIC:
            return text("not found", 404)
        body = (resources.files("eventfwd.web") / "static" / name).read_bytes()
        return Response(body, content_type=STATIC[name])

    # -- workers (Celery ping, in the background: it always waits its whole timeout) -------------

    def workers_seen(self) -> list[str] | None:
        """Workers that answered the last ping (None: not asked yet); refreshed in the back."""
        with self._workers_lock:
            due = time.monotonic() - self._workers_at > WORKERS_EVERY_S
            if due:
                self._workers_at = time.monotonic()
                threading.Thread(target=self._ping, daemon=True, name="eventfwd-ping").start()
            return self._workers

    def _ping(self) -> None:
        from worker.app import create_app as celery_app

        try:
            replies = celery_app(self.settings).control.ping(timeout=1.0)
            self._workers = sorted(name for reply in replies for name in reply)
        except Exception as exc:  # the overview says "unknown"; the log says why
            log.warning("console: could not ping the workers: %s", exc)


def _pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def create_app(settings: Settings | None = None, *, client: redis.Redis | None = None) -> Console:
    """The console as a WSGI app (settings from the environment when none are given)."""
    return Console(settings or Settings.from_env(), client=client)


class _Clock:
    """The fleet's clock (Redis's), read once per page however many times it shows an age."""

    def __init__(self, records: Records) -> None:
        self._records = records
        self._ms: int | None = None

    def __call__(self) -> int:
        if self._ms is None:
            self._ms = self._records.now_ms()
        return self._ms


@pass_context
def _ago(ctx: Context, ms: int | None) -> str:
    return ago(ms, ctx["clock"]()) if ms else "-"
