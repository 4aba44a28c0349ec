"""What a run writes for people: the run log (log.txt, log.html), the run record, machines' journals and the
JUnit report."""
