"""What the app tells the people who run it: structured events (`events`), and in time traces and metrics."""
