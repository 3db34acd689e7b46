"""The ADEME client against the replay served over real HTTP (a werkzeug server in a thread)."""

import threading

import pytest
import requests
from werkzeug.serving import make_server

from dpe_pipeline.ademe import MAX_PAGE_SIZE, USER_AGENT, AdemeClient, AdemeQueryError, AdemeUnavailableError
from dpe_pipeline.replay import create_app
from dpe_pipeline.snapshot import load_dataset


@pytest.fixture(scope="module")
def replay_url():
    app = create_app()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/data-fair/api/v1"
    server.shutdown()


@pytest.fixture
def faults(replay_url):
    """Configure the replay's fault injection for one test, and switch it off after."""
    control = replay_url.replace("/data-fair/api/v1", "/_replay/faults")

    def configure(every, codes=(429, 500)):
        requests.post(control, json={"every": every, "codes": list(codes)}, timeout=5).raise_for_status()
        return lambda: requests.get(control, timeout=5).json()

    yield configure
    requests.post(control, json={"every": 0}, timeout=5)


@pytest.fixture
def client(replay_url):
    return AdemeClient(replay_url, "dpe03existant", timeout=10, max_retries=4, backoff_factor=0.01)


def test_department_over_the_window_comes_back_complete(client):
    expected = load_dataset("dpe03existant").query("code_departement_ban == '69'")
    assert len(expected) > MAX_PAGE_SIZE
    records = client.fetch(department="69", select=["numero_dpe", "etiquette_dpe"])
    numbers = [record["numero_dpe"] for record in records]
    assert len(numbers) == len(set(numbers)) == len(expected)
    assert set(numbers) == set(expected["numero_dpe"])


def test_small_pages_follow_the_cursor_past_the_window(client):
    # 3 000-line pages: the 4th page would be refused with page=4 (4 × 3 000 > 10 000)
    pages = list(client.iter_pages(department="69", select="numero_dpe", page_size=3_000))
    assert len(pages) == 7
    assert sum(len(page) for page in pages) == 19_940


def test_date_filter_and_limit(client):
    frame = load_dataset("dpe03existant")
    in_july = frame[(frame["code_departement_ban"] == "69") & frame["date_reception_dpe"].between("2023-07-01",
                                                                                                  "2023-07-31")]
    assert client.count(department="69", date_from="2023-07-01", date_to="2023-07-31") == len(in_july)
    limited = client.fetch(department="69", date_from="2023-07-01", date_to="2023-07-31", page_size=400, limit=1000)
    assert len(limited) == 1000
    assert all("2023-07-01" <= record["date_reception_dpe"] <= "2023-07-31" for record in limited)


def test_select_and_field_filters(client):
    page = client.get_page(size=20, select=["numero_dpe", "etiquette_dpe"], etiquette_dpe_in=["F", "G"])
    assert {record["etiquette_dpe"] for record in page["results"]} <= {"F", "G"}
    assert {key for record in page["results"] for key in record} <= {"numero_dpe", "etiquette_dpe", "_i", "_score"}


def test_dataframe_drops_technical_keys(client):
    frame = client.fetch_dataframe(department="48", date_from=None, select="numero_dpe,etiquette_dpe", limit=50)
    assert list(frame.columns) == ["numero_dpe", "etiquette_dpe"]
    assert len(frame) == 50


def test_injected_429_and_500_are_retried(client, faults):
    state = faults(every=2)
    records = client.fetch(department="69", select="numero_dpe", page_size=5_000)
    assert len({record["numero_dpe"] for record in records}) == 19_940
    assert state()["injected"] >= 2


def test_exhausted_retries_give_a_clear_error(replay_url, faults):
    faults(every=1, codes=(503,))
    client = AdemeClient(replay_url, timeout=5, max_retries=2, backoff_factor=0.01)
    with pytest.raises(AdemeUnavailableError, match="après plusieurs essais"):
        client.get_page(size=1)


def test_api_400_messages_are_surfaced(client):
    with pytest.raises(AdemeQueryError) as error:
        client.get_page(size=5, select=["N°DPE"])
    assert "Impossible de sélectionner le champ N°DPE" in str(error.value)
    with pytest.raises(AdemeQueryError, match='syntaxe du paramètre "qs"'):
        client.get_page(qs="code_departement_ban:[69 TO")


def test_unreachable_api_is_a_clear_error():
    client = AdemeClient("http://127.0.0.1:9/data-fair/api/v1", timeout=2, max_retries=0)
    with pytest.raises(AdemeUnavailableError, match="Impossible de joindre"):
        client.get_page()


def test_user_agent_is_explicit(client):
    assert client.session.headers["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith("dpe-pipeline-course/")


def test_page_size_is_bounded(client):
    with pytest.raises(ValueError):
        client.get_page(size=MAX_PAGE_SIZE + 1)
