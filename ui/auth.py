"""Who uses the app: sign-in, the signed-in account's role, and the safe default for a server.

Sign-in is on as soon as one account exists in the database, or single sign-on is configured
(an ``[auth]`` section in ``.streamlit/secrets.toml``), wherever the app is served (also on
localhost, so a team can try it on one machine). Then a visitor sees the sign-in form and nothing
else, and every answer is recorded under the signed-in account's name.

Without sign-in the app is for one person on this machine: it asks a name and acts as an admin.
It must then be served on localhost (the default in ``.streamlit/config.toml``); on any other
address it shows how to set up accounts instead of any photo.

A local sign-in lasts as long as the browser tab's Streamlit session (a reload asks again: Streamlit
cannot set cookies) and at most :data:`feedback.accounts.SESSION_HOURS`; single sign-on keeps
Streamlit's own identity cookie, so it survives a reload.

This module draws only its own screens; it does not import :mod:`ui.common` (which imports it).
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlparse

import streamlit as st
from streamlit.errors import StreamlitAPIException

from db import get_engine
from db.access import Actor, Permission, PermissionDenied, can
from db.models import Role
from feedback.accounts import (
    SignedIn,
    SignInError,
    accounts_exist,
    email_actor,
    session_actor,
    sign_in,
    sign_in_wait,
    sign_out,
)
from feedback.reviews import ReviewError, clean_reviewer
from shoelabel.errors import UserError
from ui.text import plain

log = logging.getLogger("shoelabel.app")

LOCAL_ADDRESSES = frozenset({"localhost", "127.0.0.1", "::1"})
TOKEN = "auth_token"  # the session state key of a local sign-in's token
ACTOR = "auth_actor"  # the actor as the last run checked it (for drawing; writes check again)
NOTICE = "auth_notice"  # why the sign-in form is back (a session that ended)
WANTED = "auth_wanted_page"  # the page the address named when the sign-in form came (a deep link: /imports)
NAME_PARAM = "reviewer"  # the query parameter that keeps the single user's name through a reload
SETUP_COMMAND = "python -m feedback.accounts add NAME --role admin"


# --------------------------------------------------------------------------- configuration


def served_address() -> str:
    """The address the server listens on ('' for every interface)."""
    return str(st.get_option("server.address") or "").strip()


def served_locally() -> bool:
    """Whether only this machine can reach the app (the server listens on a loopback address)."""
    return served_address().strip("[]").lower() in LOCAL_ADDRESSES


def sso_configured() -> bool:
    """Whether ``.streamlit/secrets.toml`` configures single sign-on (an ``[auth]`` section)."""
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file, or one that does not parse: no single sign-on
        return False


def sign_in_on() -> bool:
    """Whether everyone signs in: an account exists, or single sign-on is configured."""
    return sso_configured() or accounts_exist(engine=get_engine())


def _sso_user_email() -> str | None:
    """The e-mail of the visitor signed in by single sign-on, or None."""
    try:
        if not st.user.is_logged_in:
            return None
        if st.user.get("email_verified") is False:
            return ""  # an address the provider has not verified is no address
        return str(st.user.get("email") or "")
    except Exception:
        log.exception("could not read st.user")
        return None


# --------------------------------------------------------------------------- the actor


def local_actor() -> Actor:
    """The single user of a local app without accounts: any name they give, and every right.

    The name is kept in the address (``?reviewer=``), so a reload does not ask it again."""
    if not st.session_state.get("reviewer") and (kept := st.query_params.get(NAME_PARAM)):
        try:
            st.session_state["reviewer"] = clean_reviewer(kept)
        except ReviewError:
            st.query_params.pop(NAME_PARAM, None)
    return Actor(str(st.session_state.get("reviewer") or ""), Role.ADMIN)


def keep_local_name(name: str) -> None:
    """Put the single user's name in the address (a page change drops it; each run puts it back)."""
    if st.query_params.get(NAME_PARAM) != name:
        st.query_params[NAME_PARAM] = name


def current_actor() -> Actor:
    """Who acts in this browser session, checked against the database now (write callbacks call this).

    :class:`PermissionDenied` when nobody may act: sign-in is on and the session has ended, or the app is
    served beyond this machine without sign-in.
    """
    if not sign_in_on():
        if served_locally():
            return local_actor()
        raise PermissionDenied(f"Sign-in is not set up on this server. Add an account: {SETUP_COMMAND}")
    actor = session_actor(st.session_state.get(TOKEN), engine=get_engine())
    if actor is None and sso_configured() and (email := _sso_user_email()):
        try:
            actor = email_actor(email, engine=get_engine())
        except SignInError:
            actor = None
    if actor is None:
        raise PermissionDenied("Your sign-in has ended: reload the page and sign in again.")
    return actor


def actor() -> Actor | None:
    """The actor as this run's gate found it (for what to draw; writes call :func:`current_actor`)."""
    return st.session_state.get(ACTOR)


def allowed(permission: Permission) -> bool:
    """Whether this session's actor may do what ``permission`` names (for what pages show)."""
    return can(actor(), permission)


# --------------------------------------------------------------------------- the gate


def gate() -> Actor:
    """The actor of this run; draws the sign-in form (or, on a server without sign-in, how to set it up)
    and stops the run when there is none. Nothing else of the app is drawn before this returns."""
    try:
        found = _gate()
    except UserError as exc:
        st.error(plain(str(exc)), icon=":material/error:")
        st.stop()
    except Exception:
        log.exception("sign-in check failed")
        st.error("Something went wrong while checking the sign-in. The details are in the server log.")
        st.stop()
    if found is None:
        st.session_state.pop(ACTOR, None)
        st.stop()
    st.session_state[ACTOR] = found
    if found.signed_in:
        st.session_state["reviewer"] = found.name  # every answer is recorded under the account's name
    return found


def _gate() -> Actor | None:
    sso = sso_configured()
    if not (sso or accounts_exist(engine=get_engine())):
        if served_locally():
            return local_actor()
        _setup_screen()
        return None
    token = st.session_state.get(TOKEN)
    if token:
        found = session_actor(token, engine=get_engine())
        if found is not None:
            return found
        _forget_session()
        st.session_state[NOTICE] = "Your sign-in has ended (it expired, or the account changed). Sign in again."
    refusal = None
    if sso:
        email = _sso_user_email()
        if email is not None:
            try:
                return email_actor(email, engine=get_engine())
            except SignInError as exc:
                refusal = (str(exc), email)
    _sign_in_screen(sso, refusal)
    return None


def _forget_session() -> None:
    """Forget everything this browser session held (its queue, its answers, who it was)."""
    keep = {key: st.session_state[key] for key in (NOTICE, WANTED) if key in st.session_state}
    st.session_state.clear()
    st.session_state.update(keep)


def _setup_screen() -> None:
    st.title("shoelabel")
    address = served_address() or "every network interface"
    st.error(
        "This app can be reached from other machines, and sign-in is not set up, so it shows nothing. "
        "Set up accounts first.",
        icon=":material/lock:",
    )
    st.caption("The server listens on:")
    st.code(address, language=None)
    st.markdown("Add an admin account on the server (it asks a password), then reload this page:")
    st.code(SETUP_COMMAND, language="bash")
    st.markdown(
        "Then add the reviewers with `--role reviewer`, or set up single sign-on in `.streamlit/secrets.toml` "
        "(see *Team server* in the README). To use the app alone on this machine instead, start it on "
        "localhost only:"
    )
    st.code("streamlit run streamlit_app.py --server.address localhost", language="bash")


def _requested_page() -> str:
    """The page the browser's address names (``imports`` for ``http://host/imports``; '' for the app's root)."""
    try:
        path = urlparse(st.context.url or "").path
    except Exception:  # no address known (a test harness): the default page
        return ""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return name if re.fullmatch(r"[a-z_]+", name) else ""


def _land() -> None:
    """Take a visitor who has just signed in to the page their address named before signing in, once the pages
    are registered; a page their role cannot use (or no page at all) leaves them on the default page."""
    wanted = st.session_state.pop(WANTED, "")
    if not wanted or wanted == _requested_page():
        return
    try:
        st.switch_page(f"ui/pages/{wanted}.py")
    except StreamlitAPIException:  # not one of this visitor's pages
        log.info("deep link to %r not followed: not a page for this visitor", wanted)


def _sign_in_screen(sso: bool, refusal: tuple[str, str] | None) -> None:
    st.title("shoelabel")
    st.session_state.setdefault(WANTED, _requested_page())  # the first address, before any rerun changes it
    if notice := st.session_state.pop(NOTICE, None):
        st.info(notice, icon=":material/timer_off:")
    if refusal is not None:
        message, email = refusal
        st.error(plain(message), icon=":material/person_off:")
        st.caption("Signed in by single sign-on as:")
        st.text(email or "(no verified e-mail address)")
        if st.button("Sign out of single sign-on", key="sso_sign_out"):
            st.logout()
    with st.form("sign_in", clear_on_submit=True, width=420):
        st.subheader("Sign in")
        name = st.text_input("Name", key="sign_in_name", max_chars=120, autocomplete="username")
        password = st.text_input(
            "Password", key="sign_in_password", type="password", max_chars=1024, autocomplete="current-password"
        )
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        try:
            signed = _signed_in(name, password)
        except SignInError as exc:
            st.error(plain(str(exc)), icon=":material/error:")
        else:
            _forget_session()
            st.session_state[TOKEN] = signed.token
            st.rerun()
    if sso and refusal is None:
        st.caption("Or")
        if st.button("Sign in with single sign-on", key="sso_sign_in", icon=":material/login:"):
            try:
                st.login()
            except Exception as exc:  # Authlib missing, or an [auth] section that lacks a setting
                log.exception("single sign-on could not start")
                st.error(
                    f"Single sign-on could not start ({type(exc).__name__}). It needs Authlib "
                    "(pip install 'Authlib>=1.3.2') and a complete [auth] section in .streamlit/secrets.toml; "
                    "the details are in the server log.",
                    icon=":material/error:",
                )


def _signed_in(name: str, password: str) -> SignedIn:
    """Sign in, saying how long the check waits after wrong passwords for this name (any name alike)."""
    wait = sign_in_wait(name, engine=get_engine())
    text = f"Several wrong passwords were given for this name: the check waits {wait:g} s." if wait else "Signing in"
    with st.spinner(text):
        return sign_in(name, password, engine=get_engine())


# --------------------------------------------------------------------------- sidebar


def sidebar(found: Actor) -> None:
    """Who is signed in, and the Sign out button (nothing without sign-in). Runs after ``st.navigation``, so it
    also takes a visitor who has just signed in to the page they asked for (see :func:`_land`)."""
    if not found.signed_in:
        return
    _land()
    with st.sidebar:
        st.caption(f"Signed in ({Role(found.role).value}) as:")
        st.text(found.name)
        if st.button("Sign out", key="sign_out", icon=":material/logout:", type="tertiary"):
            via_sso = not st.session_state.get(TOKEN)
            sign_out(st.session_state.get(TOKEN), engine=get_engine())
            _forget_session()
            if via_sso:
                st.logout()
            st.rerun()
