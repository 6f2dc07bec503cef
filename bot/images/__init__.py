"""The image feature without Discord: what a member asked for (`requests`), the job's life
from accepted to posted (`lifecycle`), and its files: PNGs with their parameters
(`pnginfo`), grids (`grids`), fitting an upload limit (`upload`), a job's files (`files`).

Nothing is re-exported here: `bot.db.jobs` imports `files`, and `lifecycle` imports
`bot.db.jobs`, so a package that imported its modules would import itself half-built.
"""
