"""The rubric's own scale: the additive 5-point rubric gives 0..5 points (templates/judge.txt asks for it).

Its own module so that training the judge (sft, through prompting) and reading grades (scoring) share the
scale without sft depending on how grades are read.
"""

SCORES = tuple(range(6))
