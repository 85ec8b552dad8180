"""The Review page's queue settings, skipped photos, Undo and the every-attribute screen, driven with AppTest
and checked in the database."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select
from streamlit.testing.v1 import AppTest

from db import session_scope
from db.models import Review, ReviewAction
from feedback.classes import add_attribute, add_classes
from feedback.reviews import record_review
from tests.app_support import assert_clean, new_app, pool_ids
from tests.conftest import conflicting_answers


def reviews(engine: Engine) -> list[Review]:
    with session_scope(engine) as session:
        return list(session.scalars(select(Review).order_by(Review.id)))


def shown_image(at: AppTest) -> int:
    return at.session_state["review_queue"][0].image_id


def sign_in(at: AppTest, name: str = "ann") -> AppTest:
    at.text_input(key="reviewer_name").input(name)
    at.button(key="FormSubmitter:reviewer_form-Start").click().run()
    assert_clean(at)
    return at


@pytest.fixture
def reviewing(catalogue: Engine) -> AppTest:
    """The Review page with reviewer "ann" signed in."""
    return sign_in(new_app().run())


@pytest.fixture
def colour(catalogue: Engine) -> Engine:
    add_attribute("colour", engine=catalogue)
    add_classes("colour", ["black", "red", "white"], engine=catalogue)
    return catalogue


@pytest.mark.slow
def test_queue_settings_survive_a_page_change(colour: Engine) -> None:
    at = sign_in(new_app().run())
    at.selectbox(key="strategy").set_value("margin").run()
    at.selectbox(key="review_attribute").set_value("colour").run()
    assert_clean(at)
    at.switch_page("ui/pages/browse.py").run()
    at.switch_page("ui/pages/review.py").run()
    assert_clean(at)
    assert at.selectbox(key="review_attribute").value == "colour"
    image_id = shown_image(at)
    at.button(key=f"brand_{image_id}_2").click().run()  # a key meant for colour is recorded on colour
    [review] = reviews(colour)
    with session_scope(colour) as session:
        stored = session.get(Review, review.id)
        assert (stored.attribute.name, stored.label_class.name) == ("colour", "red")
    at.selectbox(key="review_attribute").set_value("brand").run()
    at.switch_page("ui/pages/browse.py").run()
    at.switch_page("ui/pages/review.py").run()
    assert at.selectbox(key="strategy").value == "margin"


@pytest.mark.slow
def test_skipped_and_unsure_photos_come_back(reviewing: AppTest, catalogue: Engine) -> None:
    pool = pool_ids(catalogue)
    for n in range(len(pool)):
        answer = "unsure" if n % 2 else "skip"
        reviewing.button(key=f"{answer}_{shown_image(reviewing)}").click().run()
    assert_clean(reviewing)
    assert reviewing.session_state["review_queue"] == []
    end = " ".join(m.value for m in [*reviewing.info, *reviewing.success])
    assert f"{len(pool)} photo(s) here have no decision yet: {len(pool)} you skipped or marked unsure" in end
    assert "Every photo here has a brand" not in end

    reviewing.button(key="review_put_off").click().run()  # the pass over them
    assert_clean(reviewing)
    assert shown_image(reviewing) == pool[0]  # the one put off longest ago first
    reviewing.button(key=f"brand_{pool[0]}_1").click().run()
    assert shown_image(reviewing) == pool[1]
    for _ in pool[1:]:
        reviewing.button(key=f"skip_{shown_image(reviewing)}").click().run()
    assert reviewing.session_state["review_queue"] == []  # skipped again in this pass: not offered again in it
    end = " ".join(m.value for m in reviewing.info)
    assert f"{len(pool) - 1} photo(s) here have no decision yet" in end

    later = sign_in(new_app().run())  # another day: they come back at the end of the queue
    assert shown_image(later) == pool[1]


@pytest.mark.slow
def test_undo_survives_a_reload_for_the_reviewers_recent_answers(reviewing: AppTest, catalogue: Engine) -> None:
    from datetime import timedelta

    from db.models import utcnow

    pool = pool_ids(catalogue)
    old = record_review(pool[-1], "ann", "skip", engine=catalogue)
    with session_scope(catalogue, write=True) as session:
        session.get(Review, old).created_at = utcnow() - timedelta(hours=25)  # too old to undo
    first = shown_image(reviewing)
    reviewing.button(key=f"brand_{first}_3").click().run()
    reviewing.button(key=f"skip_{shown_image(reviewing)}").click().run()

    reloaded = sign_in(new_app().run())  # a new browser session: this tab recorded nothing
    reloaded.button(key=f"undo_{shown_image(reloaded)}").click().run()
    reloaded.button(key=f"undo_{shown_image(reloaded)}").click().run()
    assert_clean(reloaded)
    assert shown_image(reloaded) == first  # the answer undone last comes back on screen
    undone = {r.id: r.undone_at is not None for r in reviews(catalogue)}
    assert undone.pop(old) is False and all(undone.values())
    reloaded.button(key=f"undo_{first}").click().run()
    assert any("Nothing to undo" in m.value for m in reloaded.markdown)
    other = record_review(pool[-2], "bob", "skip", engine=catalogue)
    reloaded.button(key=f"undo_{first}").click().run()
    assert not {r.id: r.undone_at for r in reviews(catalogue)}[other]  # never another reviewer's answer


@pytest.mark.slow
def test_photo_details_relabel_and_send_to_review(catalogue: Engine) -> None:
    from db.labels import effective_labels

    image_id = pool_ids(catalogue)[0]
    record_review(image_id, "bob", "correct", label="acme", engine=catalogue)
    at = sign_in(new_app().run(), "carol")
    at.switch_page("ui/pages/browse.py").run()
    at.selectbox(key="f_imported").set_value("(none)").run()  # the pool's photos
    at.button(key=f"open_{image_id}").click().run()
    at.selectbox(key=f"relabel_choice_{image_id}").set_value("crest")
    at.button(key=f"relabel_{image_id}").click().run()
    assert_clean(at)
    with session_scope(catalogue) as session:
        assert effective_labels(session, [image_id])[image_id].value == "crest"
    at.button(key=f"open_{image_id}").click().run()  # the details again, with what was done
    assert any("relabelled crest" in s.value for s in at.success)

    at.button(key=f"send_back_{image_id}").click().run()
    assert_clean(at)
    with session_scope(catalogue) as session:
        assert effective_labels(session, [image_id])[image_id].value is None  # back in the unlabelled queue
    history = [(r.reviewer, r.action, r.undone_at is not None) for r in reviews(catalogue)]
    assert history == [
        ("bob", ReviewAction.CORRECT, True),
        ("carol", ReviewAction.CORRECT, True),
        ("carol", ReviewAction.UNSURE, False),
    ]
    queue = sign_in(new_app().run(), "dan")
    assert image_id in [item.image_id for item in queue.session_state["review_queue"]]


@pytest.mark.slow
def test_settling_a_conflict_needs_an_explicit_choice_and_its_photo_can_be_enlarged(catalogue: Engine) -> None:
    image_id = pool_ids(catalogue)[0]
    conflicting_answers(catalogue, image_id, "ann", "bob")
    at = sign_in(new_app().run(), "carol")
    at.switch_page("ui/pages/browse.py").run()
    at.session_state["browse_tab"] = "Conflicts"
    at.run()
    assert at.selectbox(key=f"resolve_choice_{image_id}").value is None  # not the latest answer
    at.button(key=f"resolve_{image_id}").click().run()
    assert_clean(at)
    assert len(reviews(catalogue)) == 2  # one click settles nothing
    assert any("Choose the final answer" in e.value for e in at.error)
    at.button(key=f"enlarge_{image_id}").click().run()
    assert_clean(at)
    assert any(m.value == f"**Photo #{image_id}**" for m in at.markdown)  # its details, the photo at full size
