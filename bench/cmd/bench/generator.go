package main

func (r *report) generator() error { return nil }
