"""The environment agent loop (:mod:`.loop`) and what it reads and writes: the per-turn schema
(:mod:`.turns`), prompts (:mod:`.prompts`), the action parser (:mod:`.action_parser`) and task
datasets (:mod:`.dataset`)."""
