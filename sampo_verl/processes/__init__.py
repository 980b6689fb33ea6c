"""Trainer processes, shared by behaviour cloning, the CPU runs and the arena: launching verl's trainers
(:mod:`.launch`), the guard that stops a trainer whose launcher died (:mod:`.guard`) and progress bars
from their metric files (:mod:`.progress`)."""
