"""The Team page: how many answers each reviewer gives per hour, how often they agree with the settled
label and with each other (Cohen's kappa), the photos they differ on, the quality-control share, and, for
admins, the accounts (add one, reset a password, unlock a name slowed down by wrong passwords).

Names are shown in data grids and charts (drawn as text, never read as Markdown or HTML) and, in
messages, through :func:`ui.common.plain`.
"""

from __future__ import annotations

from collections.abc import Callable

import altair as alt
import pandas as pd
import streamlit as st

from db.access import Actor, Permission
from db.models import Role
from feedback.accounts import (
    MAX_EMAIL_LENGTH,
    MAX_NAME_LENGTH,
    MAX_PASSWORD_LENGTH,
    AccountError,
    AccountView,
    add_account,
    list_accounts,
    reset_password,
    unlock,
)
from feedback.agreement import (
    MAX_QC_SHARE,
    MIN_ACTIVE_MINUTES,
    MIN_SHARED_PHOTOS,
    MIN_TIMED_ANSWERS,
    SESSION_GAP,
    ReviewerStats,
    TeamReport,
    qc_setting_note,
    set_quality_control_share,
    team_report,
)
from ui import auth, common
from ui.jobs import duration

MISSING = "–"  # a value that cannot be computed yet
AXIS_TICKS = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]  # a share's axis: few ticks, whatever the chart's width


def _percent(value: float | None) -> str:
    return MISSING if value is None else f"{value:.0%}"


def not_enough(have: int, need: int, unit: str = "") -> str:
    return f"not enough data ({have} of {need}{unit})"


def rate_text(r: ReviewerStats) -> str:
    """Answers per hour, or how far the reviewer is from enough answers and active time to say."""
    if r.timed < MIN_TIMED_ANSWERS:
        return not_enough(r.timed, MIN_TIMED_ANSWERS)
    if not r.enough_for_rate:
        return not_enough(int(r.active_hours * 60), MIN_ACTIVE_MINUTES, " active minutes")
    return MISSING if r.per_hour is None else f"{r.per_hour:.0f}"


def reviewer_frame(report: TeamReport) -> pd.DataFrame:
    """One row per reviewer, as text ("not enough data" where a figure would rest on a tiny sample)."""
    return pd.DataFrame(
        {
            "reviewer": [r.reviewer for r in report.reviewers],
            "answers": [r.answers for r in report.reviewers],
            "answers per hour": [rate_text(r) for r in report.reviewers],
            "active time": [duration(r.active_hours * 3600) for r in report.reviewers],
            "sessions": [r.sessions for r in report.reviewers],
            "photos decided": [r.decisive for r in report.reviewers],
            "settled, shared with another reviewer": [r.settled for r in report.reviewers],
            "agreement with the settled label": [
                _percent(r.agreement) if r.enough_for_agreement else not_enough(r.settled, MIN_SHARED_PHOTOS)
                for r in report.reviewers
            ],
        }
    )


def pair_frame(report: TeamReport) -> pd.DataFrame:
    short = {id(p): not_enough(p.shared, MIN_SHARED_PHOTOS) for p in report.pairs if not p.enough}
    return pd.DataFrame(
        {
            "reviewer": [p.first for p in report.pairs],
            "other reviewer": [p.second for p in report.pairs],
            "photos both answered": [p.shared for p in report.pairs],
            "same answer": [short.get(id(p)) or _percent(p.agreement) for p in report.pairs],
            "Cohen's kappa": [
                short.get(id(p)) or (MISSING if p.kappa is None else f"{p.kappa:.2f}") for p in report.pairs
            ],
        }
    )


def disagreement_frame(report: TeamReport) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "photo": [f"#{d.image_id}" for d in report.disagreements],
            "file": [d.file for d in report.disagreements],
            "answers": [
                "; ".join(f"{name}: {value}" for name, value in d.answers.items()) for d in report.disagreements
            ],
            "label now": [d.label_now for d in report.disagreements],
        }
    )


def agreement_chart(report: TeamReport) -> alt.Chart | None:
    """Agreement with the settled label per reviewer, as bars (None when nobody has enough shared photos)."""
    rows = [
        {"reviewer": r.reviewer, "agreement": r.agreement, "settled photos": r.settled}
        for r in report.reviewers
        if r.agreement is not None and r.enough_for_agreement
    ]
    if not rows:
        return None
    return (
        alt.Chart(pd.DataFrame(rows))
        .mark_bar()
        .encode(
            x=alt.X(
                "agreement:Q",
                title="agreement with the settled label",
                scale=alt.Scale(domain=[0, 1]),
                axis=alt.Axis(values=AXIS_TICKS, format=".0%"),
            ),
            y=alt.Y("reviewer:N", title=None, sort="-x"),
            tooltip=["reviewer", alt.Tooltip("agreement:Q", format=".0%"), "settled photos"],
        )
        .properties(height=alt.Step(28))
    )


def _reviewers(report: TeamReport) -> None:
    st.subheader("Reviewers")
    st.dataframe(reviewer_frame(report), hide_index=True)
    gap = int(SESSION_GAP.total_seconds() // 60)
    st.caption(
        f"Answers per hour: over active time, the time between two answers less than {gap} minutes apart (a "
        f"longer pause starts a new session), shown from {MIN_TIMED_ANSWERS} timed answers over "
        f"{MIN_ACTIVE_MINUTES} active minutes. Agreement: the share of a reviewer's answers (their latest "
        "decision on each photo; settling a conflict aside) that equal the photo's label, on photos whose label "
        f"is settled (reviewers do not disagree on it) and that another reviewer answered too, shown from "
        f"{MIN_SHARED_PHOTOS} such photos."
    )
    chart = agreement_chart(report)
    if chart is not None:
        st.altair_chart(chart, width="stretch")


def _pairs(report: TeamReport) -> None:
    st.subheader("Reviewers who answered the same photos")
    if not report.pairs:
        st.caption(
            "No photo has answers from two reviewers yet. Set a quality-control share below to send some decided "
            "photos to a second reviewer."
        )
        return
    st.dataframe(pair_frame(report), hide_index=True)
    st.caption(
        f"{report.photos_with_two_or_more} photo(s) have answers from two or more reviewers. Cohen's kappa: "
        "agreement beyond chance (1 is perfect, 0 no better than chance); a dash where it is undefined (one "
        f"answer throughout). Both are shown from {MIN_SHARED_PHOTOS} photos both answered."
    )
    st.markdown(f"**Disagreements** ({len(report.disagreements)})")
    if report.disagreements:
        st.dataframe(disagreement_frame(report), hide_index=True)
        st.caption("Settle the ones still in conflict on the Browse page, Conflicts tab.")
    else:
        st.caption("Reviewers gave the same answer on every photo they share.")


def _save_share() -> None:
    """The Save button's callback: runs before the page is drawn, so the page shows the new share."""
    state = st.session_state
    try:
        actor = auth.current_actor()  # checked again now; the service refuses anyone but an admin
        share = set_quality_control_share(state["qc_share_percent"] / 100, actor=actor, engine=common.engine())
    except Exception as exc:
        state["team_flash"] = ("error", common.error_text(exc))
        return
    state["team_flash"] = ("success", f"Quality-control share set to {share:.0%}.")


def _quality_control() -> None:
    st.subheader("Quality control")
    share, by, at = qc_setting_note(common.engine())
    who = f" by {common.plain(by)}" if by else ""
    when = f" Set{who} on {at:%Y-%m-%d %H:%M} UTC." if at is not None else ""
    st.markdown(
        f"**{share:.0%}** of the photos decided by one reviewer go to a second reviewer, first in their queue and "
        f"without the first answer, so that kappa covers a sample of all the work.{when}"
    )
    common.show_flash("team_flash")
    if not auth.allowed(Permission.MANAGE):
        st.caption("Only an admin can change it.")
        return
    with st.form("quality_control", border=True, width=480):
        st.slider(
            "Quality-control share (%)",
            0,
            round(MAX_QC_SHARE * 100),
            value=round(share * 100),
            step=1,
            key="qc_share_percent",
            help="The photos are picked by a hash of their id: the same ones whoever asks, a fixed sample.",
        )
        st.form_submit_button("Save", type="primary", on_click=_save_share)


# --------------------------------------------------------------------------- accounts


def account_frame(accounts: list[AccountView]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": [a.name for a in accounts],
            "role": [a.role.value for a in accounts],
            "signs in with": [a.sign_in for a in accounts],
            "state": [a.state() for a in accounts],
        }
    )


def _account_action(action: Callable[[Actor], str]) -> None:
    """Run an admin's account change (checked again as the actor now), and say what happened on the next run."""
    try:
        done = action(auth.current_actor())
    except Exception as exc:
        st.session_state["accounts_flash"] = ("error", common.error_text(exc))
        return
    st.session_state["accounts_flash"] = ("success", common.plain(done))


def _new_password(key: str) -> str:
    """The password typed twice in the form fields ``key`` and ``key_again`` (emptied either way)."""
    state = st.session_state
    first, again = state.get(key, ""), state.get(f"{key}_again", "")
    state[key] = state[f"{key}_again"] = ""
    if first != again:
        raise AccountError("The two passwords differ; nothing was changed.")
    return first


def _unlock() -> None:
    name = st.session_state.get("account_unlock")
    _account_action(lambda actor: f"{unlock(name, engine=common.engine(), actor=actor).name} can sign in at once.")


def _reset() -> None:
    def reset(actor: Actor) -> str:
        view = reset_password(
            st.session_state.get("account_reset"), _new_password("account_reset_password"),
            engine=common.engine(), actor=actor,
        )  # fmt: skip
        return f"New password set for {view.name}; their other sign-ins have ended."

    _account_action(reset)


def _add() -> None:
    state = st.session_state

    def add(actor: Actor) -> str:
        password = _new_password("account_add_password") or None
        view = add_account(
            state.get("account_add_name", ""), state.get("account_add_role", Role.REVIEWER.value),
            password=password, email=state.get("account_add_email") or None, engine=common.engine(), actor=actor,
        )  # fmt: skip
        state["account_add_name"] = state["account_add_email"] = ""
        return f"Added {view.name} ({view.role.value}, signs in with {view.sign_in})."

    _account_action(add)


def _password_fields(key: str) -> None:
    st.text_input("Password", key=key, type="password", max_chars=MAX_PASSWORD_LENGTH, autocomplete="new-password")
    st.text_input(
        "Password again", key=f"{key}_again", type="password", max_chars=MAX_PASSWORD_LENGTH,
        autocomplete="new-password",
    )  # fmt: skip


def _account_forms(accounts: list[AccountView]) -> None:
    names = [a.name for a in accounts]
    waiting = [a.name for a in accounts if a.wrong_passwords]
    if waiting:
        with st.form("account_unlock_form", border=True, width=480):
            st.selectbox("Wrong passwords were given for", waiting, key="account_unlock")
            st.caption("Unlocking forgets them: the next sign-in with this name does not wait.")
            st.form_submit_button("Unlock", on_click=_unlock)
    if names:
        with st.form("account_reset_form", border=True, width=480):
            st.selectbox("Reset the password of", names, key="account_reset")
            _password_fields("account_reset_password")
            st.form_submit_button("Set the new password", on_click=_reset)
    with st.form("account_add_form", border=True, width=480):
        st.markdown("**Add an account**")
        st.text_input("Name", key="account_add_name", max_chars=MAX_NAME_LENGTH)
        roles = [Role.ADMIN.value] if not names else [r.value for r in Role]
        st.selectbox("Role", roles, key="account_add_role", index=roles.index(Role.ADMIN.value) if not names else 1)
        _password_fields("account_add_password")
        st.text_input("E-mail for single sign-on (optional)", key="account_add_email", max_chars=MAX_EMAIL_LENGTH)
        if not names:
            st.caption(
                "The first account turns sign-in on: from then on everyone signs in, so it is an admin (you). "
                "This page then asks you to sign in with it."
            )
        st.form_submit_button("Add", on_click=_add)


def _accounts() -> None:
    st.subheader("Accounts")
    common.show_flash("accounts_flash")
    if not auth.allowed(Permission.MANAGE):
        st.caption("Only an admin can add accounts, reset passwords and unlock names.")
        return
    accounts = list_accounts(engine=common.engine())
    if accounts:
        st.dataframe(account_frame(accounts), hide_index=True)
        st.caption(
            "After five wrong passwords in a row for a name, each further sign-in with it waits 2, 4, 8, ... "
            "seconds (at most 60), then is checked as usual. Unlock forgets the wrong passwords."
        )
    else:
        st.caption("No accounts: the app runs for a single user on this machine.")
    _account_forms(accounts)


def render() -> None:
    st.title("Team")
    report = common.shown_or_none(team_report, common.engine())
    if report is None:
        return
    if not report.reviewers:
        st.info("No reviews yet: the figures appear once reviewers answer on the Review page.", icon=":material/group:")
    else:
        with common.guard():
            _reviewers(report)
        with common.guard():
            _pairs(report)
    with common.guard():
        _quality_control()
    with common.guard():
        _accounts()
