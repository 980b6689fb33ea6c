"""WebShop: WebShop's reward worked by hand, its pages and actions, the expert, the file loader, the loop."""

import asyncio
import json
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sampo_verl.agent.dataset import main as dataset_main
from sampo_verl.agent.loop import EnvAgentLoop
from sampo_verl.agent.prompts import format_response
from sampo_verl.envs import make_env
from sampo_verl.envs.webshop import WebShopEnv, _fuzzy, load_catalog, type_reward, webshop_reward
from sampo_verl.envs.webshop_catalog import DEPARTMENTS, Goal, Product, generate_catalog
from sampo_verl.envs.webshop_files import WebShopFileError, read_webshop_files
from sampo_verl.runs.assets import build_tokenizer, default_corpus
from sampo_verl.testing.scripted_server import ScriptedServer

TOKENIZER = build_tokenizer(default_corpus())
SNACKS = "grocery & gourmet food › snacks › protein bar"


def product(**changes) -> Product:
    fields = dict(
        asin="B0TEST0001",
        title="Norvale Gluten Free Protein Bar",
        query="protein bar",
        product_category=SNACKS,
        attributes=("gluten free", "low sugar", "vegan"),
        options={"flavor": ("chocolate", "vanilla"), "size": ("12 count", "24 count")},
        price=20.0,
        price_tag="$20.00",
        features=("Vegan: made to be vegan",),
        description="A bar.",
    )
    return Product(**{**fields, **changes})


GOAL = Goal(
    asin="B0TEST0001",
    instruction="i need a gluten free and low sugar protein bar with flavor: chocolate, and size: 12 count",
    attributes=("gluten free", "low sugar"),
    options=("chocolate", "12 count"),
    price_upper=30.0,
    name="Norvale Gluten Free Protein Bar",
    query="protein bar",
    product_category=SNACKS,
)
RIGHT = {"flavor": "chocolate", "size": "12 count"}


# reward (WebShop: r_type * (attributes + options + price) / (|attributes| + |options| + 1)) ----------


def test_the_exact_product_with_its_options_scores_one():
    assert webshop_reward(product(), GOAL, 20.0, RIGHT) == 1.0


def test_a_wrong_option_costs_one_of_five_parts():
    assert webshop_reward(product(), GOAL, 20.0, {"flavor": "vanilla", "size": "12 count"}) == pytest.approx(4 / 5)
    assert webshop_reward(product(), GOAL, 20.0, {}) == pytest.approx(3 / 5)  # no option chosen


def test_options_match_under_webshops_fuzzy_rule():
    # token-set ratio > 85, as WebShop's thefuzz: a value inside a longer one matches, and so do
    # near-identical sizes, which the generated catalogue therefore never offers side by side
    assert webshop_reward(product(), GOAL, 20.0, {"flavor": "Chocolate Chip", "size": "12 count"}) == 1.0
    assert webshop_reward(product(), GOAL, 20.0, {"flavor": "chocolate", "size": "24 count"}) == 1.0
    for department in DEPARTMENTS:
        for values in (department.attributes, *department.options.values()):
            for i, a in enumerate(values):
                assert not any(_fuzzy(a, b) for b in values[i + 1 :]), (department.path, a)


def test_over_the_price_bound_costs_the_price_part():
    assert webshop_reward(product(price=35.0), GOAL, 35.0, RIGHT) == pytest.approx(4 / 5)


def test_a_missing_attribute_counts_when_the_text_names_it():
    no_sugar_attr = product(attributes=("gluten free",))
    assert webshop_reward(no_sugar_attr, GOAL, 20.0, RIGHT) == pytest.approx(4 / 5)
    in_text = product(attributes=("gluten free",), description="Low sugar, high fibre.")
    assert webshop_reward(in_text, GOAL, 20.0, RIGHT) == 1.0


def test_a_product_of_another_type_scores_zero_or_is_scaled_down():
    shirt = product(title="Kelix Cotton T-Shirt", query="t-shirt", product_category="clothing › men › t-shirt")
    assert type_reward(shirt, GOAL) == 0.0 and webshop_reward(shirt, GOAL, 20.0, RIGHT) == 0.0
    # one of the goal title's five content words (norvale): title_score 0.2, no query or category match
    branded = product(title="Norvale Cotton T-Shirt", query="t-shirt", product_category="clothing › men › t-shirt",
                      attributes=(), options={})  # fmt: skip
    assert type_reward(branded, GOAL) == 0.5
    assert webshop_reward(branded, GOAL, 20.0, {}) == pytest.approx(0.5 * 1 / 5)  # only the price part
    # same listing query: the type matches whatever the title says (title_score 0.4)
    assert type_reward(product(title="Norvale Protein Crisps"), GOAL) == 1.0


# pages and actions ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def env() -> WebShopEnv:
    return make_env("webshop", num_products=600, results_per_page=4)


def test_search_lists_results_in_pages_with_prev_and_next(env):
    observation, info = env.reset(3)
    assert observation.startswith("WebShop [SEP] Instruction: [SEP] ") and "admissible_actions" not in info
    assert info["task"] in observation
    observation, reward, done, info = env.step(f"search[{env.goal.query}]")
    total = len(env.results)
    assert (reward, done) == (0.0, False) and f"Page 1 (Total results: {total})" in observation and total > 8
    first_page = env.results[:4]
    assert info["admissible_actions"] == ["click[back to search]", "click[next >]"] + [
        f"click[{a.lower()}]" for a in first_page
    ]
    assert all(f"{a} [SEP] {env.catalog.by_asin[a].title}" in observation for a in first_page)
    observation, _, _, info = env.step("click[Next >]")  # case-insensitive, as WebShop's clickables
    assert "Page 2" in observation and "click[< prev]" in info["admissible_actions"]
    assert f"click[{env.results[4].lower()}]" in info["admissible_actions"]
    observation, _, _, _ = env.step("click[< prev]")
    assert "Page 1" in observation and "< Prev" not in observation


def test_item_page_options_subpages_and_back(env):
    env.reset(5)
    env.step(f"search[{env.goal.query}]")
    asin = env.results[0]
    item = env.catalog.by_asin[asin]
    observation, _, _, info = env.step(f"click[{asin.lower()}]")
    assert f"{item.title} [SEP] Price: {item.price_tag}" in observation and observation.endswith("Buy Now")
    name, values = next(iter(item.options.items()))
    observation, _, _, after = env.step(f"click[{values[-1]}]")
    assert f"{values[-1]} [selected]" in observation and env.options == {name: values[-1]}
    assert after["anchor"] != info["anchor"]
    observation, _, _, _ = env.step("click[features]")
    assert observation == "Back to Search [SEP] < Prev [SEP] " + " ".join(item.features)
    observation, _, _, _ = env.step("click[< prev]")
    assert observation.startswith("Back to Search [SEP] < Prev [SEP] ") and env.options == {name: values[-1]}
    env.step("click[< prev]")
    assert env.page == "results" and env.options == {}
    observation, _, _, info = env.step("click[back to search]")
    assert observation.startswith("WebShop [SEP] Instruction:") and "admissible_actions" not in info


@pytest.mark.parametrize(
    "setup, action, reason",
    [
        ([], "click[buy now]", "not_clickable"),
        ([], "search[   ]", "empty_query"),
        ([], "buy the bar", "unknown_action"),
        (["search[protein bar]"], "search[tea]", "no_search_box"),
        (["search[protein bar]"], "click[b0nothere00]", "not_clickable"),
        (["search[protein bar]"], "click[< prev]", "not_clickable"),  # page 1 has no previous page
    ],
)
def test_refused_actions_keep_the_page_and_name_the_reason(env, setup, action, reason):
    env.reset(0)
    for step in setup:
        env.step(step)
    before = env._view()
    observation, reward, done, info = env.step(action)
    assert (observation, info["anchor"]) == (before[0], before[1]["anchor"])
    assert (reward, done, info["invalid_action"]) == (0.0, False, reason)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(["search[", "click[", "]", "buy now", "next >", "< prev", " "]),
                          st.text(max_size=8)), max_size=8))  # fmt: skip
def test_any_text_is_an_action_or_a_named_refusal(env, parts):
    env.reset(1)
    observation, reward, done, info = env.step("".join(parts))
    assert info.get("invalid_action") in (None, "unknown_action", "empty_query", "not_clickable", "no_search_box")
    assert isinstance(observation, str) and reward == 0.0 and not done


def test_buying_ends_the_episode_with_the_reward(env):
    env.reset(2)
    while not env.done:
        action = env.expert_action()
        observation, reward, done, info = env.step(action)
    assert action == "click[buy now]" and reward == 1.0 and info["won"]
    assert observation.endswith("Your score (min 0.0, max 1.0) [SEP] 1.00")
    with pytest.raises(RuntimeError, match="after the episode ended"):
        env.step("click[buy now]")


def play(env: WebShopEnv, seed: int, policy) -> tuple[float, bool, int]:
    observation, info = env.reset(seed)
    for turn in range(WebShopEnv.default_max_turns):
        observation, reward, done, info = env.step(policy(info))
        if done:
            return reward, info["won"], turn + 1
    return 0.0, False, WebShopEnv.default_max_turns


def test_the_expert_wins_95_percent_and_a_random_policy_under_10():
    env = make_env("webshop")
    expert = [play(env, seed, lambda info: env.expert_action()) for seed in range(200)]
    assert sum(won for _, won, _ in expert) >= 190 and max(turns for _, _, turns in expert) <= 8
    rng = np.random.default_rng(0)

    def random_policy(info):
        listed = info.get("admissible_actions")
        if listed is None:  # the search page: a few of the instruction's words
            return f"search[{' '.join(rng.choice(env.goal.instruction.split(), size=3))}]"
        return listed[rng.integers(len(listed))]

    assert sum(won for _, won, _ in (play(env, seed, random_policy) for seed in range(200))) < 20


# the catalogue ---------------------------------------------------------------------------------------


def test_generated_catalogue_has_near_duplicate_families_and_is_seeded():
    products = generate_catalog(3000, seed=4)
    assert len(products) == 3000 and len({p.asin for p in products}) == 3000
    families = Counter(p.title.split()[0] + "|" + p.query for p in products)
    assert np.mean([n >= 2 for n in families.values()]) > 0.8
    departments = {p.product_category.rsplit(" › ", 1)[0] for p in products}
    assert departments == {d.path for d in DEPARTMENTS} and len({p.query for p in products}) >= 40
    assert [p.asin for p in generate_catalog(50, seed=4)] == [p.asin for p in products[:50]]
    assert generate_catalog(50, seed=5)[0].asin != products[0].asin


def test_search_is_bm25_over_product_text_and_the_index_is_built_once():
    catalog = load_catalog(500, seed=1)
    assert load_catalog(500, seed=1) is catalog
    target = catalog.products[17]
    assert catalog.search(target.title)[0] in {p.asin for p in catalog.products if p.title == target.title}
    assert catalog.search("zzzz qqqq") == [] and len(catalog.search(target.query)) <= 50
    wanted = catalog.search(f"{target.attributes[0]} {target.query}")
    assert target.query in catalog.by_asin[wanted[0]].title.lower()


def write_webshop_files(tmp_path) -> tuple[str, str, str]:
    """Three products, an invalid ASIN and a duplicate, in the format WebShop's setup.sh downloads."""
    items = [
        {"asin": "B01AAAAAAA", "name": "Cozy Cotton Hoodie", "category": "fashion", "query": "Hoodies ",
         "product_category": "Clothing › Men › Hoodies", "full_description": "A warm hoodie.",
         "small_description": ["Soft cotton", "Machine wash"], "pricing": "$20.00$30.00",
         "customization_options": {"Color": [{"value": "Navy/Blue", "image": None}, {"value": "Red", "image": None}],
                                   "Size": [{"value": "Large", "image": None}]}, "images": ["x"]},
        {"asin": "B01BBBBBBB", "name": "Green Tea Bags", "category": "grocery", "query": "green tea",
         "product_category": "Grocery › Tea", "full_description": "Tea.", "small_description": "Organic leaves",
         "pricing": "$9.99", "customization_options": None, "images": ["y"]},
        {"asin": "nan", "name": "broken", "category": "", "query": "", "product_category": "",
         "full_description": "", "small_description": "", "pricing": "", "customization_options": None},
        {"asin": "B01AAAAAAA", "name": "duplicate", "category": "", "query": "", "product_category": "",
         "full_description": "", "small_description": "", "pricing": "", "customization_options": None},
        {"asin": "B01CCCCCCC", "name": "Plain Mug", "category": "home", "query": "mug",
         "product_category": "Home › Kitchen", "full_description": "", "small_description": [],
         "pricing": None, "customization_options": {}, "images": ["z"]},
    ]  # fmt: skip
    attributes = {
        "B01AAAAAAA": {"attributes": ["cotton", "machine wash"], "instruction": "i want a cotton hoodie",
                       "instruction_attributes": ["cotton"]},
        "B01BBBBBBB": {"attributes": ["organic"], "instruction": "i need organic green tea",
                       "instruction_attributes": ["organic"]},
    }  # fmt: skip
    human = {
        "B01AAAAAAA": [
            {"instruction": "i want a machine wash hoodie.", "instruction_attributes": ["machine wash"],
             "instruction_options": ["navy | blue", "large"]},
            {"instruction": "a hoodie please", "instruction_attributes": [], "instruction_options": []},
        ],
        "B01BBBBBBB": [{"instruction": "organic tea", "instruction_attributes": ["organic"],
                        "instruction_options": []}],
    }  # fmt: skip
    paths = [str(tmp_path / n) for n in ("items_shuffle.json", "items_ins_v2.json", "items_human_ins.json")]
    for path, data in zip(paths, (items, attributes, human)):
        with open(path, "w") as f:
            json.dump(data, f)
    return tuple(paths)


def test_webshop_files_are_read_as_webshop_reads_them(tmp_path):
    products_path, attributes_path, human_path = write_webshop_files(tmp_path)
    products, goals = read_webshop_files(products_path, attributes_path, human_path)
    assert [p.asin for p in products] == ["B01AAAAAAA", "B01BBBBBBB", "B01CCCCCCC"]
    hoodie, tea, mug = products
    assert hoodie.options == {"color": ("navy | blue", "red"), "size": ("large",)} and hoodie.query == "hoodies"
    assert 20.0 <= hoodie.price <= 30.0 and hoodie.price_tag == "$20.0 to $30.0"
    assert hoodie.features == ("Soft cotton", "Machine wash") and tea.features == ("Organic leaves",)
    assert (tea.price, tea.price_tag, mug.price, mug.attributes) == (9.99, "$9.99", 100.0, ())
    # human goals with attributes only; the price text as WebShop appends it
    assert [(g.asin, g.attributes, g.options) for g in goals] == [
        ("B01AAAAAAA", ("machine wash",), ("navy | blue", "large")),
        ("B01BBBBBBB", ("organic",), ()),
    ]
    assert goals[1].instruction.startswith("organic tea, and price lower than ") and goals[1].price_upper in (
        20.0, 30.0, 40.0, 50.0)  # fmt: skip
    # without human instructions: the synthetic ones, one per option combination
    _, synthetic = read_webshop_files(products_path, attributes_path)
    assert [g.instruction.split(", and price")[0] for g in synthetic] == [
        "i want a cotton hoodie with color: navy | blue, and size: large",
        "i want a cotton hoodie with color: red, and size: large",
        "i need organic green tea",
    ]
    with pytest.raises(ValueError, match="needs attributes_path or human_goals_path"):
        read_webshop_files(products_path)


def _item(**fields) -> dict:
    return {"asin": "B01AAAAAAA", "name": "Hoodie", "query": "hoodie", "pricing": "$20.00", **fields}


GOOD_ATTRIBUTES = {
    "B01AAAAAAA": {"attributes": ["cotton"], "instruction": "a hoodie", "instruction_attributes": ["cotton"]}
}
MALFORMED = {  # (which file, its content) -> (where the message points, what it says)
    "truncated": (("products", '[{"asin": "B01AAAAAAA", "na'), ("", "not valid JSON")),
    "empty": (("products", "  \n"), ("", "is empty")),
    "not utf-8": (("products", b"\xff\xfe[]"), ("", "cannot read")),
    "not a list": (("products", {"asin": "B01AAAAAAA"}), ("the top", "valid list")),
    "pricing a list": (("products", [_item(pricing=["$20"])]), ("[0].pricing", "valid string")),
    "pricing two dots": (("products", [_item(pricing="$1.2.3")]), ("[0].pricing", "'$a' or '$a$b'")),
    "name a number": (("products", [_item(), _item(asin="B01BBBBBBB", name=7)]), ("[1].name", "valid string")),
    "option without value": (
        ("products", [_item(customization_options={"Color": [{"image": None}]})]),
        ("[0].customization_options.Color[0].value", "Field required"),
    ),
    "no valid asin": (("products", [_item(asin="nan")]), ("", "no product with a valid asin")),
    "attributes a string": (("attributes", {"B01AAAAAAA": {"attributes": "cotton"}}), (".B01AAAAAAA.attributes", "valid list")),  # noqa: E501
    "human goal without text": (("human goals", {"B01AAAAAAA": [{"instruction_attributes": ["x"]}]}), (".B01AAAAAAA[0].instruction", "Field required")),  # noqa: E501
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_webshop_files_are_refused_naming_the_file_and_the_field(tmp_path, case):
    (bad_file, content), (where, says) = MALFORMED[case]
    files = {"products": [_item()], "attributes": GOOD_ATTRIBUTES, "human goals": {}}
    paths = {}
    for name, data in {**files, bad_file: content}.items():
        paths[name] = tmp_path / f"{name.replace(' ', '_')}.json"
        if isinstance(data, bytes):
            paths[name].write_bytes(data)
        else:
            paths[name].write_text(data if isinstance(data, str) else json.dumps(data))
    with pytest.raises(WebShopFileError) as refused:
        read_webshop_files(str(paths["products"]), str(paths["attributes"]), str(paths["human goals"]))
    message = str(refused.value)
    assert f"the {bad_file} file {paths[bad_file]}" in message and says in message
    assert where == "" or f"at {where}:" in message


def test_a_missing_webshop_file_is_named_and_the_dataset_command_says_it_in_one_line(tmp_path, capsys):
    products = str(tmp_path / "nowhere.json")
    with pytest.raises(WebShopFileError, match=f"cannot read the products file {products}"):
        read_webshop_files(products, attributes_path=products)
    options = json.dumps({"products_path": products, "attributes_path": products})
    with pytest.raises(SystemExit) as stopped:
        dataset_main(["--env", "webshop", "--out", str(tmp_path / "data"), "--env-options", options])
    error = capsys.readouterr().err.strip()
    assert stopped.value.code == 2 and "\n" not in error and f"cannot read the products file {products}" in error
    with pytest.raises(SystemExit) as stopped:
        dataset_main(["--env", "webshop", "--out", str(tmp_path / "data"), "--env-options", "{products_path:"])
    assert stopped.value.code == 2 and "--env-options is not a JSON object" in capsys.readouterr().err


def test_the_environment_plays_webshop_files_within_a_goal_range(tmp_path):
    products_path, attributes_path, human_path = write_webshop_files(tmp_path)
    files = dict(products_path=products_path, attributes_path=attributes_path, human_goals_path=human_path)
    env = make_env("webshop", goal_range=[1, None], **files)
    assert all(env.reset(seed)[1]["task"].startswith("organic tea") for seed in range(3))
    assert play(env, 0, lambda info: env.expert_action())[:2] == (1.0, True)
    env = make_env("webshop", goal_range=[0, 1], **files)
    assert play(env, 0, lambda info: env.expert_action())[:2] == (1.0, True)  # two options chosen
    with pytest.raises(ValueError, match="selects none of the 2 goals"):
        make_env("webshop", goal_range=[5, 9], **files)
    with pytest.raises(ValueError, match="goal_range selects WebShop's file goals"):
        make_env("webshop", goal_range=[0, 5])


# through the agent loop ------------------------------------------------------------------------------


def test_episodes_through_the_agent_loop_with_a_scripted_model():
    env = make_env("webshop", num_products=600, results_per_page=4)
    env.reset(7)
    plan = []
    while not env.done:
        plan.append(env.expert_action())
        env.step(plan[-1])
    script = [plan[0], "search[again]", *plan[1:]]  # a second search, off the search page: refused
    server = ScriptedServer(TOKENIZER, lambda prompt, i: format_response("", script[min(i, len(script) - 1)]))

    async def run():
        loop = EnvAgentLoop.standalone(server, TOKENIZER, {"prompt_length": 8192, "response_length": 256})
        extra_info = {"env": "webshop", "seed": 7, "env_options": {"num_products": 600, "results_per_page": 4}}
        return await loop.run({"temperature": 1.0}, raw_prompt=[], extra_info=extra_info, uid="u", session_id=0)

    outputs = asyncio.run(run())
    fields = [o.extra_fields for o in outputs]
    assert len(outputs) == len(script) and fields[-1]["success"] == 1.0 and outputs[0].reward_score == 1.0
    assert [f["action_valid"] for f in fields] == [True, False] + [True] * (len(script) - 2)
    assert fields[1]["parse_reason"] == "not_admissible" and fields[1]["anchor"] == fields[2]["anchor"]
    first, second = (TOKENIZER.decode(o.prompt_ids) for o in outputs[:2])
    assert f"Task: {env.goal.instruction}" in first and "Admissible actions" not in first
    assert "Admissible actions: click[back to search], click[next >], click[b" in second
