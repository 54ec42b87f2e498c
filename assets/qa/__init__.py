"""QA: `image_qa` and its checks (definitions.py); pixel statistics and grades (statistics.py); a day graded (grading.py)."""
