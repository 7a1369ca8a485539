"""Stock-IT pipeline: producer, stream processor, alert engine and their pure logic."""
